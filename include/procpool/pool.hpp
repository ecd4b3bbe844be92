// procpool::Pool: a fixed set of worker processes fed through shared-memory rings.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <algorithm>
#include <memory>
#include <ranges>
#include <string>
#include <sys/types.h>
#include <vector>

#include "procpool/async_result.hpp"
#include "procpool/detail/chunk.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/map_state.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/errors.hpp"
#include "procpool/imap_iterator.hpp"

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
// Throws ValueError, naming `call`, if the pool no longer takes tasks.
void submit_task(PoolCore& core, const char* call, std::shared_ptr<ResultStateBase> state,
                 FunctionRef<void(OutputBuffer&)> encode);
// Throws ValueError, naming `call`, if the pool no longer takes tasks.
void check_running(const PoolCore& core, const char* call);
// Lets threads waiting on `state` pump the pool's results.
void attach_source(PoolCore& core, ResultStateBase& state);
// close() asks `flusher` to submit the rest of its input first.
void register_flusher(PoolCore& core, std::weak_ptr<InputFlusher> flusher);
int worker_count(const PoolCore& core) noexcept;

template <class Range>
using map_item_t = wire_t<std::ranges::range_value_t<Range>>;
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
    detail::submit_task(*core_, "apply_async", state,
                        [&](detail::OutputBuffer& out) { detail::encode_task(out, f, args...); });
    return AsyncResult<R>(std::move(state));
  }

  // apply_async(f, args...).get(): blocks until the task has run; throws its error.
  template <class F, class... Args>
  auto apply(F f, const Args&... args) -> detail::task_result_t<F, Args...> {
    return apply_async(f, args...).get();
  }

  // Applies f to every item; returns the results in input order (void for a
  // void f). Blocks until all have run. Items travel in chunks of `chunksize`
  // (0: about four chunks per worker, as Python does). An item that throws
  // does not stop the others; map then throws the error of the first failed
  // item (by position). ValueError after close() or terminate().
  template <class F, std::ranges::forward_range Range>
  auto map(F f, const Range& items, std::size_t chunksize = 0) {
    return map_async(f, items, chunksize).get();
  }
  // As map(), but returns at once with the future of the whole result.
  template <class F, std::ranges::forward_range Range>
  auto map_async(F f, const Range& items, std::size_t chunksize = 0) {
    return map_chunks<false, detail::map_item_t<Range>>("map_async", f, items, chunksize);
  }
  // As map(), with each item a tuple unpacked into f's arguments.
  template <class F, std::ranges::forward_range Range>
  auto starmap(F f, const Range& items, std::size_t chunksize = 0) {
    return starmap_async(f, items, chunksize).get();
  }
  template <class F, std::ranges::forward_range Range>
  auto starmap_async(F f, const Range& items, std::size_t chunksize = 0) {
    return map_chunks<true, detail::map_item_t<Range>>("starmap_async", f, items, chunksize);
  }
  // Applies f to every item of any input range, lazily: the input is read a
  // chunk at a time as results are consumed, with a bounded look-ahead, so an
  // endless range works in bounded memory. Results come in input order. The
  // range is kept (moved in, or referenced if an lvalue) while the iterator
  // needs it. ValueError after close()/terminate() or if chunksize is 0.
  template <class F, std::ranges::input_range Range>
  auto imap(F f, Range&& items, std::size_t chunksize = 1) {
    return imap_chunks<true>("imap", f, std::forward<Range>(items), chunksize);
  }
  // As imap(), with results in the order they complete.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F f, Range&& items, std::size_t chunksize = 1) {
    return imap_chunks<false>("imap_unordered", f, std::forward<Range>(items), chunksize);
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
  template <bool Star, class Item, class F, class Range>
  auto map_chunks(const char* call, F f, const Range& items, std::size_t chunksize) {
    detail::check_chunk<F, Star, Item>();
    using R = detail::item_result_t<F, Star, Item>;
    using Whole = typename detail::MapAggregate<R>::Whole;
    detail::check_running(*core_, call);
    auto whole = std::make_shared<detail::ResultState<Whole>>();
    detail::attach_source(*core_, *whole);
    const auto count = static_cast<std::size_t>(std::ranges::distance(items));
    if (count == 0) {
      if constexpr (std::is_void_v<R>) {
        whole->set_value();
      } else {
        whole->set_value({});
      }
      return AsyncResult<Whole>(std::move(whole));
    }
    if (chunksize == 0) chunksize = detail::auto_chunksize(count, detail::worker_count(*core_));
    auto aggregate = std::make_shared<detail::MapAggregate<R>>(whole, count, chunksize);
    auto it = std::ranges::begin(items);
    std::vector<std::shared_ptr<detail::ChunkState<R>>> chunks;
    for (std::size_t index = 0, first = 0; first < count; ++index, first += chunksize) {
      chunks.push_back(std::make_shared<detail::ChunkState<R>>(aggregate, index, std::min(chunksize, count - first)));
    }
    for (std::size_t index = 0; index < chunks.size(); ++index) {
      const std::size_t n = chunks[index]->count();
      try {
        detail::submit_task(*core_, call, chunks[index], [&](detail::OutputBuffer& out) {
          detail::encode_chunk<F, Star, Item>(out, f, it, n);
        });
      } catch (...) {
        // Closed under our feet: nothing more goes out; the rest fail with the reason.
        if (index == 0) throw;
        for (std::size_t rest = index; rest < chunks.size(); ++rest) chunks[rest]->fail(std::current_exception());
        break;
      }
      std::ranges::advance(it, static_cast<std::ranges::range_difference_t<Range>>(n));
    }
    return AsyncResult<Whole>(std::move(whole));
  }

  template <bool Ordered, class F, class Range>
  auto imap_chunks(const char* call, F f, Range&& items, std::size_t chunksize) {
    using Item = detail::map_item_t<Range>;
    detail::check_chunk<F, false, Item>();
    using R = detail::item_result_t<F, false, Item>;
    static_assert(!std::is_void_v<R>, "procpool: imap needs a callable that returns a value; use map for void ones");
    detail::check_running(*core_, call);
    if (chunksize == 0) throw ValueError(std::string("procpool::Pool::") + call + ": chunksize must be at least 1");
    // Keep every worker busy with a chunk queued behind it, and no more.
    const auto max_in_flight = static_cast<std::size_t>(2 * detail::worker_count(*core_) + 2);
    auto state = std::make_shared<detail::IMapState<R>>(Ordered, max_in_flight);
    using Stored = std::conditional_t<std::is_lvalue_reference_v<Range>, Range, std::remove_cvref_t<Range>>;
    struct Input {
      Stored range;
      std::optional<std::ranges::iterator_t<std::remove_reference_t<Stored>>> it;
    };
    auto input = std::make_shared<Input>(Input{std::forward<Range>(items), std::nullopt});
    std::weak_ptr<detail::IMapState<R>> weak_state = state;
    state->set_producer([core = core_, input, f, chunksize, weak_state,
                         call](std::size_t index) -> typename detail::IMapState<R>::Produced {
      typename detail::IMapState<R>::Produced produced;
      std::vector<Item> chunk;
      try {
        if (!input->it) input->it = std::ranges::begin(input->range);
        while (chunk.size() < chunksize && *input->it != std::ranges::end(input->range)) {
          chunk.push_back(static_cast<Item>(**input->it));
          ++*input->it;
        }
      } catch (...) {
        produced.input_error = std::current_exception();
      }
      auto sink = weak_state.lock();
      if (chunk.empty() || !sink) return produced;
      auto chunk_state = std::make_shared<detail::ChunkState<R>>(sink, index, chunk.size());
      detail::submit_task(*core, call, chunk_state, [&](detail::OutputBuffer& out) {
        detail::encode_chunk<F, false, Item>(out, f, chunk.begin(), chunk.size());
      });
      produced.submitted = true;
      return produced;
    });
    detail::register_flusher(*core_, state);
    return IMapIterator<R>(std::move(state));
  }

  // Shared with the results, which pump it while they wait (weakly).
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace procpool
