/// \file
/// procpool::PoolStats: what Pool::stats() reports about a pool's work, its
/// workers and the time its tasks wait and run.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <sys/types.h>
#include <vector>

namespace procpool {

/// The median and 99th percentile of one duration over the pool's last
/// timed tasks (see PoolStats::queue_wait). Both are 0 while `samples` is 0.
struct LatencyPercentiles {
  std::chrono::nanoseconds p50{0};  ///< The median (nearest rank).
  std::chrono::nanoseconds p99{0};  ///< The 99th percentile (nearest rank); at least p50.
  std::size_t samples = 0;          ///< How many timed tasks these are over (at most PoolStats::timing_window).
};

/// One worker process of a Pool, as it is when Pool::stats() is called.
struct WorkerStats {
  int slot = 0;                   ///< Its place in the pool, 0 .. processes-1; a replacement takes the same slot.
  pid_t pid = 0;                  ///< Its process id.
  std::uint64_t tasks_done = 0;   ///< Results it has returned (values and errors its tasks threw) since it started.
  std::uint64_t rss_bytes = 0;    ///< Its resident memory (/proc/PID/statm); 0 if it ended meanwhile.
  double cpu_seconds = 0;         ///< User + system CPU time it has used (/proc/PID/stat); 0 if it ended meanwhile.
};

/// A snapshot of a Pool's counters (Pool::stats()). A task is what one
/// apply_async() submits, or one chunk of the map family; a retried task
/// counts once. A task's outcome is counted just after its result becomes
/// ready (a get() may return a moment before), and the counters are read
/// one after the other while the pool runs, so they may be a few tasks
/// apart; once the pool has been joined, submitted == completed + failed +
/// cancelled.
struct PoolStats {
  /// How many timed tasks the percentiles are over, at most: the latest ones.
  static constexpr std::size_t timing_window = 1024;

  std::uint64_t submitted = 0;  ///< Tasks submitted since the pool started.
  std::uint64_t completed = 0;  ///< Tasks that returned a value.
  /// Tasks that ended with an error: the task threw, its worker died
  /// (WorkerLost), TaskTimeout, SerializationError, PoolTerminated, BrokenPool.
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;  ///< Tasks that AsyncResult::cancel() ended (Cancelled).
  /// Tasks not started yet: in the pool's queue or in a worker's ring
  /// (including, for a moment, finished ones whose results the pool has not
  /// read yet).
  std::size_t queued = 0;
  std::size_t running = 0;  ///< Tasks a worker is running now (at most one per worker).
  /// Workers that ended while the pool ran (killed, crashed, timed out,
  /// cancelled past their grace, or retired after maxtasksperchild) and were
  /// started again.
  std::uint64_t workers_replaced = 0;
  std::vector<WorkerStats> workers;  ///< The workers running now, by slot (one being replaced is missing).
  /// From submission to the start in a worker, and the run in the worker
  /// (the task's function, its arguments' decoding and its result's
  /// encoding), over the latest timed tasks (up to timing_window). Timing a
  /// task costs two precise clock reads and a message, so not every task is
  /// timed: every 64th, and the first 16 submitted in each tick of the
  /// coarse clock (4 ms on most kernels), so a pool running fewer than about
  /// 4000 tasks a second times nearly all of them; with
  /// PoolOptions::trace_path set, every task. A task that did not run to its
  /// end (its worker died, it was cancelled before it started) is not in them.
  LatencyPercentiles queue_wait;
  LatencyPercentiles run_time;  ///< See queue_wait.
};

}  // namespace procpool
