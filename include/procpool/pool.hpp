/// \file
/// procpool::Pool: a fixed set of worker processes fed through shared-memory
/// rings; its options (PoolOptions) and cpu_count().
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "procpool/pool_stats.hpp"
#include "procpool/task_pool.hpp"

namespace procpool {

/// The number of CPUs this process may run on (its affinity mask), at least
/// 1, as Python's os.process_cpu_count(). Never blocks or throws. Thread-safe.
int cpu_count();

/// What Pool(PoolOptions) builds; every field has a default:
/// `procpool::Pool pool(procpool::PoolOptions{.processes = 4, .maxtasksperchild = 100});`
struct PoolOptions {
  int processes = 0;                          ///< The number of workers; 0: procpool::cpu_count()
  std::size_t maxtasksperchild = 0;           ///< 0: unlimited; else a worker is replaced after that many tasks
  /// Run once in every worker when it starts (replacements too). If it
  /// throws, the worker exits and is replaced; after 3 × processes such
  /// failures in a row (no worker finishing its initializer in between), the
  /// pool is broken: unfinished results fail with BrokenPool, whose what()
  /// holds the exception's message (its first 255 bytes).
  std::function<void()> initializer;
  std::chrono::milliseconds task_timeout{0};  ///< 0: none; else a longer task fails with TaskTimeout (TaskOptions::timeout overrides it)
  /// How long a running task has to stop after AsyncResult::cancel() before its worker is killed (SIGKILL) and
  /// replaced, by the pool's watch thread (checked four times per grace: up to a quarter late)
  std::chrono::milliseconds cancel_grace{1000};
  /// 0: unlimited; else apply_async (and the map family's submission, one
  /// task per chunk) blocks while that many submitted tasks have not
  /// finished, so a producer runs in bounded memory; once blocked, it waits
  /// until a quarter of them have (at least one), so that the producer and
  /// the workers do not take turns on every task. A task counts from its
  /// submission until its result is complete, however it ends (value, error,
  /// WorkerLost, TaskTimeout, Cancelled, PoolTerminated, BrokenPool). While
  /// it waits, the blocked thread takes results itself as AsyncResult::wait()
  /// does; close() and terminate() release it (it then throws ValueError).
  /// Callbacks (then()) run on the result thread, which never blocks here: a
  /// submission from one goes over the limit rather than wait for itself.
  std::size_t max_pending = 0;
  /// Descriptors the workers keep besides 0, 1 and 2; they close every other
  /// one they inherit, so a pipe or connection the program holds when it
  /// builds the pool is not held open by its workers. (Process children
  /// are plain forks: they inherit everything.)
  std::vector<int> keep_fds;
  /// Empty: no trace. Else the pool writes a Chrome trace-event JSON file
  /// there (created or truncated when the pool is built; open it in
  /// https://ui.perfetto.dev or chrome://tracing): one track per worker
  /// ("worker SLOT (pid N)") with each task's run ("task", args {"task": N},
  /// N counting the pool's tasks from 1 in submission order; a map chunk is
  /// one task) and the worker's start and end (the cause: signal or exit
  /// status), and each task's wait in the queue (an async "queued" span).
  /// Timestamps are microseconds since the pool was built. Events are
  /// written in batches from the result thread; the file is complete, valid
  /// JSON once the pool has been joined (terminate() and the destructor
  /// join). A task whose worker died while running it has its run (marked
  /// "lost") end when the pool learnt of the death; a task retried after
  /// that shows only its last attempt; a task cancelled before it started,
  /// or cut short by terminate(), has no run. Every task is then timed (see
  /// PoolStats::queue_wait), which costs about a third of the no-op
  /// throughput (benchmarks/bm_stats.cpp).
  /// The constructor throws Error if the file cannot be opened.
  std::string trace_path;
};

/// A pool of worker processes, Python's multiprocessing.Pool for C++.
///
/// \code
/// int square(int x) { return x * x; }
/// ...
/// procpool::Pool pool(4);
/// std::vector<procpool::AsyncResult<int>> results;
/// for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
/// for (auto& r : results) std::cout << r.get() << '\n';
/// \endcode
///
/// The workers are forked when the pool is built, from a small helper process
/// (the zygote) that also forks their replacements; they see the program's
/// memory as it was then, but none of its file descriptors (0, 1, 2 and
/// PoolOptions::keep_fds aside) and none of its signal handlers: every signal
/// is at its default and none is blocked, but SIGSEGV, SIGBUS, SIGFPE, SIGILL
/// and SIGABRT, which procpool catches to record the crashing stack
/// (WorkerLost::backtrace()), then re-raises at their default. A worker that
/// dies fails only the task it was running (WorkerLost) and is replaced. A
/// worker that cannot be forked (out of processes or fds) is asked for again,
/// with a back-off, while the tasks wait; once no worker at all could be
/// started for 5 s, the pool is broken (BrokenPool, saying why). The task
/// surface (apply_async, map, imap, close, join, terminate, ...) is
/// TaskPool's. Every member but the constructors and the destructor is
/// thread-safe.
///
/// Cancellation and per-task policy: AsyncResult::cancel() takes a task out
/// of the pool's queue or a worker's ring (it never runs), or asks a running
/// one to stop (this_task) and has the watch thread kill its worker if it
/// has not stopped within PoolOptions::cancel_grace. TaskOptions give one
/// task a hard timeout, a soft timeout (a stop request), retries after
/// WorkerLost or TaskTimeout, and a priority among queued tasks. The watch
/// thread wakes for these only while some task has such a deadline.
class Pool : public TaskPool {
 public:
  /// Starts cpu_count() workers. Blocks until one has started (see
  /// Pool(PoolOptions)). Throws Error if the pool's resources cannot be had.
  Pool();
  /// Starts `processes` workers. Blocks until one has started (see
  /// Pool(PoolOptions)). Throws ValueError if processes < 1, Error if the
  /// pool's resources cannot be had.
  explicit Pool(int processes);
  /// Starts options.processes workers (0: cpu_count()) with the other
  /// options. Blocks until one has started (forked; its initializer may still
  /// run), retrying those that cannot be forked; the zygote forks the others
  /// meanwhile, and the pool goes on retrying any that cannot be. Tasks go to
  /// the workers that have started. Throws ValueError if options.processes < 0;
  /// BrokenPool (an Error) if no worker could be forked for 5 s; Error if
  /// the pool's other resources (memory, sockets, the zygote) cannot be had,
  /// or if options.trace_path cannot be opened for writing (the message
  /// names the path and the reason, as strerror gives it).
  explicit Pool(PoolOptions options);

  /// The pids of the workers running now (a replacement has a new pid; one
  /// being replaced is missing). Never blocks on the tasks; just after the
  /// constructor it waits (a few ms) for the first start of every worker, so
  /// all are listed but those whose fork failed. Throws ValueError
  /// after close() or terminate(), BrokenPool once the pool is broken.
  /// Thread-safe.
  std::vector<pid_t> worker_pids() const;

  /// A snapshot of the pool's counters, its workers (pid, tasks done,
  /// resident memory, CPU time) and the percentiles of its tasks' queue wait
  /// and run time (see PoolStats for what each field counts). Cheap enough
  /// to call ten times a second on a busy pool: it takes the pool's lock
  /// briefly (never waiting for a task; just after the constructor, for the
  /// workers' first starts, as worker_pids()) and reads two small /proc files
  /// per worker. Works at any time, also after close(), join() or terminate()
  /// (then with no workers). Throws only std::bad_alloc. Thread-safe.
  PoolStats stats() const;
};

}  // namespace procpool
