/// \file
/// procpool::this_task: what a running task can ask about itself.
#pragma once

#include <stop_token>

namespace procpool::this_task {

/// Whether the task running in this process (a pool's worker runs one at a
/// time) has been asked to stop:
/// AsyncResult::cancel(), or its TaskOptions::soft_timeout passed. A task that
/// checks it may return early; its result is then dropped (the caller sees
/// Cancelled). False outside a task, and on a procpool::mpi::Pool's worker
/// ranks (no stop request reaches a task there). Never blocks or throws.
bool stop_requested() noexcept;

/// The running task's stop request as a std::stop_token, for a
/// std::stop_callback or a std::condition_variable_any wait. Outside a task,
/// a token that never stops. Never blocks; throws only std::bad_alloc.
std::stop_token stop_token();

}  // namespace procpool::this_task
