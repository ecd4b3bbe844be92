// The manager's part in per-task control: AsyncResult::cancel() of one task,
// and TaskOptions::retries when the rank running a task dies.
#include <cstring>
#include <string>

#include "engine/mpi/manager.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// The final WorkerLost of a task that was tried more than once says how often.
std::exception_ptr counting_attempts(const std::exception_ptr& error, int attempts) {
  if (attempts < 2) return error;
  try {
    std::rethrow_exception(error);
  } catch (const WorkerLost& e) {
    return std::make_exception_ptr(WorkerLost(std::string(e.what()) + " (the last of " + std::to_string(attempts) +
                                                  " attempts)",
                                              e.pid(), e.signal(), e.exit_status(), e.backtrace()));
  } catch (...) {
    return error;
  }
}

}  // namespace

bool Manager::cancel_task(std::uint64_t task_id, const std::exception_ptr& error) {
  Task cancelled;
  {
    std::lock_guard lock(mutex_);
    if (auto queued = backlog_.take(task_id)) {
      cancelled = std::move(*queued);
    } else {
      Task* sent = nullptr;
      int rank = 0;
      for (Worker& w : workers_) {
        for (Task& t : w.inflight) {
          if (t.header.task_id != task_id || t.abandoned) continue;
          sent = &t;
          rank = w.info.rank;
        }
      }
      // Not found: answered (being completed now, perhaps), or already failed.
      if (sent == nullptr) return false;
      // It keeps its slot on the rank until the rank answers; the answer is dropped.
      sent->abandoned = true;
      cancelled.state = std::move(sent->state);
      cancelled.ledger = std::move(sent->ledger);
      task_cancels_to_send_.emplace_back(rank, task_id);
      wake_locked();
    }
  }
  // Outside mutex_: its callbacks run here, and its shared values may be released.
  cancelled.state->fail(error);
  cancelled.ledger->closed();
  return true;
}

bool Manager::send_task_cancels_locked() {
  if (task_cancels_to_send_.empty()) return false;
  for (const auto& [rank, task_id] : task_cancels_to_send_) {
    if (workers_[static_cast<std::size_t>(rank - 1)].lost) continue;
    ControlSend& send = control_sends_.emplace_back();
    send.value = task_id;
    send.rank = rank;
    check(MPI_Isend(&send.value, sizeof send.value, MPI_BYTE, rank, tag_cancel_task, comm_, &send.request),
          "MPI_Isend");
    posted(workers_[static_cast<std::size_t>(rank - 1)]);
  }
  task_cancels_to_send_.clear();
  return true;
}

void Manager::lose_task_locked(Task& task, const std::exception_ptr& error, bool retry,
                               std::vector<Completion>& done) {
  if (!task.abandoned && retry && task.retries_left > 0) {
    requeue_locked(task, true);
    return;
  }
  if (!task.abandoned) fail_later(task, counting_attempts(error, task.attempts), done);
  bury_locked(task);
}

void Manager::bury_locked(Task& task) {
  if (task.sends.empty()) return;
  // Sends to a lost rank may never complete: their buffers must stay.
  for (MPI_Request& r : task.sends) MPI_Request_free(&r);
  task.sends.clear();
  graveyard_.push_back(std::move(task));
}

bool Manager::keeps_bytes(const Worker& worker, const Task& task) const noexcept {
  return task.retries_left > 0 || (options_.recovery && !worker.info.same_host);
}

void Manager::requeue_locked(Task& task, bool ran) {
  // Runs again on another rank, from its place in the queue (its priority and id).
  Task again;
  again.header = task.header;
  again.state = std::move(task.state);
  again.ledger = std::move(task.ledger);
  again.blocks = task.blocks;
  again.priority = task.priority;
  again.retries_left = ran ? task.retries_left - 1 : task.retries_left;
  again.attempts = ran ? task.attempts : task.attempts - 1;
  if (task.sends.empty()) {
    again.message = std::move(task.message);
    again.mapped = std::move(task.mapped);
  } else {
    // The lost rank's sends keep the original bytes: the new attempt gets a copy.
    again.message.resize(sizeof(MessageHeader) + task.header.size);
    std::memcpy(again.message.data() + sizeof(MessageHeader), task.payload(), task.header.size);
  }
  bury_locked(task);
  backlog_.push(std::move(again));
}

}  // namespace procpool::mpi::detail
