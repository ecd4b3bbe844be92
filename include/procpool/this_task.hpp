/// \file
/// procpool::this_task: what a running task can ask about itself.
#pragma once

#include <stop_token>

namespace procpool::this_task {

/// Whether the task running in this process (a pool's worker runs one at a
/// time) has been asked to stop: by AsyncResult::cancel() (its result has
/// then already failed with Cancelled, and what it returns is dropped), or
/// because its TaskOptions::soft_timeout passed (its result counts as usual).
/// A request names its task: it never carries over to the next task of the
/// same worker. False outside a task, and on a procpool::mpi::Pool's worker
/// ranks (no stop request reaches a task there). Two atomic loads from shared memory:
/// cheap enough to poll in a loop. Callable from any thread of the task.
/// Never blocks or throws.
bool stop_requested() noexcept;

/// The running task's stop request as a std::stop_token, for a
/// std::stop_callback or a std::condition_variable_any wait. Outside a task,
/// a token that never stops. The first call in a worker starts a small thread
/// there that sleeps until a stop request comes; the task's std::stop_callbacks
/// run on that thread (or at once on the registering thread if the request
/// came first). Each task's first call allocates its std::stop_source; tasks
/// that never call it pay nothing. Never blocks; throws only std::bad_alloc
/// (or std::system_error if the thread cannot be started).
std::stop_token stop_token();

}  // namespace procpool::this_task
