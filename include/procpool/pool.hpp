// procpool::Pool: a fixed set of worker processes fed through shared-memory rings.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <sys/types.h>
#include <vector>

#include "procpool/async_result.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/errors.hpp"

namespace procpool {

// CPUs this process may run on (its affinity mask), at least 1. Thread-safe.
int cpu_count();

struct PoolOptions {
  int processes = 0;                          // 0: procpool::cpu_count()
  std::size_t maxtasksperchild = 0;           // 0: unlimited; else a worker is replaced after that many tasks
  std::function<void()> initializer;          // run once in every worker when it starts
  std::chrono::milliseconds task_timeout{0};  // 0: none
};

namespace detail {
class PoolCore;
// Queues one task: `encode` writes its payload; `state` receives the outcome.
// Throws ValueError if the pool no longer takes tasks.
void submit_task(PoolCore& core, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode);
}  // namespace detail

// A pool of worker processes, Python's multiprocessing.Pool for C++.
//
//   int square(int x) { return x * x; }
//   ...
//   procpool::Pool pool(4);
//   std::vector<procpool::AsyncResult<int>> results;
//   for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
//   for (auto& r : results) std::cout << r.get() << '\n';
//
// The workers are forked when the pool is built, from a small helper process
// (the zygote) that also forks their replacements; they see the program's
// memory as it was then. Tasks are free functions, captureless lambdas or
// cereal-serializable function objects, with cereal-serializable arguments.
// Unless said otherwise, members are thread-safe.
class Pool {
 public:
  // cpu_count() workers.
  Pool();
  // `processes` workers; ValueError if processes < 1.
  explicit Pool(int processes);
  // ValueError if options.processes < 0.
  explicit Pool(PoolOptions options);
  // If still running: close(), then join(), so nothing queued is lost. After
  // terminate() or close(): join(). Blocks until the workers have exited.
  ~Pool();

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues f(args...) and returns at once with its future. Never blocks on
  // the workers (tasks beyond what the rings hold wait in the parent).
  // Throws ValueError after close() or terminate(). An argument whose
  // serialization throws gives a result failed with SerializationError.
  template <class F, class... Args>
  auto apply_async(F f, const Args&... args) -> AsyncResult<detail::task_result_t<F, Args...>> {
    detail::check_task<F, Args...>();
    using R = detail::task_result_t<F, Args...>;
    auto state = std::make_shared<detail::ResultState<R>>();
    detail::submit_task(*core_, state, [&](detail::OutputBuffer& out) { detail::encode_task(out, f, args...); });
    return AsyncResult<R>(std::move(state));
  }

  // apply_async(f, args...).get(): blocks until the task has run; throws its error.
  template <class F, class... Args>
  auto apply(F f, const Args&... args) -> detail::task_result_t<F, Args...> {
    return apply_async(f, args...).get();
  }

  // Takes no more tasks; the workers exit once every queued task has run.
  // Never blocks. ValueError if already closed or terminated.
  void close();
  // Blocks until every worker has exited (after close(): every queued task has
  // run). ValueError while the pool is still running.
  void join();
  // Stops the workers now (SIGKILL); unfinished results fail with
  // PoolTerminated. Never hangs. ValueError if already terminated.
  void terminate();

  // The number of workers the pool keeps (dead ones are replaced).
  int size() const;
  // The pids of the current workers (a replacement has a new pid).
  std::vector<pid_t> worker_pids() const;

 private:
  // Shared with the results, which pump it while they wait (weakly).
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace procpool
