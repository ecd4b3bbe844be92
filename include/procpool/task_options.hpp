/// \file
/// procpool::TaskOptions: the policy of one task (deadlines, retries, priority).
#pragma once

#include <chrono>

namespace procpool {

/// Per-task policy, given as the first argument of apply_async / apply:
/// `pool.apply_async(procpool::TaskOptions{.timeout = 5s, .retries = 2}, f, x)`.
/// Every field has a default that changes nothing, and a task with default
/// options costs nothing more than one submitted without (no allocation, no
/// clock read). On a procpool::Pool, a task with a timeout or soft_timeout
/// of its own makes the pool's watch thread look at the running tasks four
/// times per its shortest such limit (at most every 100 ms) while the task
/// is in a worker's queue or running; the deadlines are checked that often,
/// so they fire up to a quarter of the limit late. procpool::mpi::Pool takes
/// priority and retries, and refuses a timeout or soft_timeout (ValueError).
struct TaskOptions {
  /// 0: the pool's (PoolOptions::task_timeout). Else a hard limit on one run,
  /// counted from when the worker starts it: the worker is killed (SIGKILL)
  /// and replaced, and the attempt fails with TaskTimeout.
  std::chrono::milliseconds timeout{0};
  /// 0: none. Else, that long after the task started (each attempt anew),
  /// this_task::stop_requested() becomes true and this_task::stop_token()
  /// stops; the task may end early (cooperatively) and its result counts as
  /// usual. Nothing is killed.
  std::chrono::milliseconds soft_timeout{0};
  /// Runs again, on another worker (a replacement counts), after its worker
  /// died (WorkerLost) or it ran past its timeout (TaskTimeout), up to this
  /// many more times; the parent keeps the payload to send it again. Only
  /// the last attempt's outcome is delivered, and its error's what() ends
  /// with "(attempt N of N)". A task never runs to completion twice: only a
  /// run that published no result is retried (its worker may still have got
  /// through the function's body just before dying, so retry idempotent
  /// tasks). A cancelled task is not retried.
  int retries = 0;
  /// Higher starts first among the tasks still in the pool's queue; equal
  /// priorities start in submission order (a retried task goes first among
  /// its priority). Tasks already handed to a worker are not reordered. On a
  /// procpool::Pool, once any task with a non-zero priority has been
  /// submitted, each worker is handed at most 2 tasks ahead (instead of up
  /// to 1024), so a later task of higher priority waits for at most those:
  /// that pool then pays a little throughput on tiny tasks for it.
  int priority = 0;
};

}  // namespace procpool
