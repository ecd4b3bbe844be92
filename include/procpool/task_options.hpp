/// \file
/// procpool::TaskOptions: the policy of one task (deadlines, retries, priority).
#pragma once

#include <chrono>

namespace procpool {

/// Per-task policy, given as the first argument of apply_async / apply:
/// `pool.apply_async(procpool::TaskOptions{.timeout = 5s, .retries = 2}, f, x)`.
/// Every field has a default that changes nothing. procpool::mpi::Pool takes
/// priority and retries, and refuses a timeout or soft_timeout (ValueError).
struct TaskOptions {
  /// 0: the pool's (PoolOptions::task_timeout). Else a hard limit on one
  /// run: the worker is killed and replaced, the attempt fails with TaskTimeout.
  std::chrono::milliseconds timeout{0};
  /// 0: none. Else, that long after the task started, this_task::stop_requested()
  /// becomes true; the task may end early (cooperatively), nothing is killed.
  std::chrono::milliseconds soft_timeout{0};
  /// Runs again, on another worker, after WorkerLost or TaskTimeout, up to this
  /// many more times. Only the last attempt's outcome is delivered; a task
  /// never runs to completion twice.
  int retries = 0;
  /// Higher starts first among the tasks not yet handed to a worker; equal
  /// priorities start in submission order.
  int priority = 0;
};

}  // namespace procpool
