// The manager's sending side: which worker gets the next tasks, how many
// go ahead to it, and several small ones to a message.
#include <algorithm>
#include <cstring>

#include "engine/mpi/manager.hpp"

namespace procpool::mpi::detail {

namespace {

// Short tasks (each fits a batch message) go further ahead, about this much
// of the worker's measured time per task, up to max_in_flight: tasks of a
// millisecond or more stay at two, and keep their place in rank 0's queue.
constexpr auto in_flight_time = std::chrono::milliseconds(1);
constexpr std::size_t max_in_flight = 256;

}  // namespace

std::size_t Manager::depth(const Worker& worker) const noexcept {
  if (worker.per_task.count() <= 0) return tasks_in_flight;
  const auto ahead = static_cast<std::size_t>(in_flight_time / worker.per_task);
  return std::clamp(ahead, tasks_in_flight, max_in_flight);
}

bool Manager::dispatch_locked() {
  bool progress = false;
  const auto small = [](const Task& t) {
    return t.header.piece == 0 && !t.mapped && sizeof(MessageHeader) + t.message.size() <= batch_bytes;
  };
  std::vector<Task> batch;
  while (!backlog_.empty()) {
    // The live worker with the most room for the next task.
    const bool next_small = small(backlog_.top());
    Worker* best = nullptr;
    std::size_t room = 0;
    std::size_t with_room = 0;
    for (Worker& w : workers_) {
      const std::size_t limit = next_small ? depth(w) : tasks_in_flight;
      if (w.lost || w.inflight.size() >= limit) continue;
      ++with_room;
      if (limit - w.inflight.size() > room) {
        room = limit - w.inflight.size();
        best = &w;
      }
    }
    if (best == nullptr) break;
    if (best->inflight.empty()) best->busy_since = std::chrono::steady_clock::now();
    // Its share of the backlog, as many small tasks as fit one message; one
    // at a time while its tasks are not known to be short, so that two
    // long ones submitted together run on two ranks.
    const std::size_t share = depth(*best) <= tasks_in_flight
                                  ? 1
                                  : std::min(room, (backlog_.size() + with_room - 1) / with_room);
    std::size_t bytes = sizeof(MessageHeader);
    while (next_small && batch.size() < share && !backlog_.empty() && small(backlog_.top()) &&
           bytes + backlog_.top().message.size() <= batch_bytes) {
      bytes += backlog_.top().message.size();
      batch.push_back(backlog_.pop());
    }
    // A worker with work queued gets no short message: the tasks wait on
    // rank 0 until they fill half of one, or it runs low, so a stream of
    // tasks goes in a few large messages rather than many small ones.
    if (best->inflight.size() >= tasks_in_flight && bytes < batch_bytes / 2 && batch.size() < room) {
      for (Task& t : batch) backlog_.push(std::move(t));
      batch.clear();
      break;
    }
    progress = true;
    ++best->messages;
    if (batch.size() > 1) {
      send_batch_locked(*best, batch);
      posted(*best);
      continue;
    }
    best->inflight.push_back(batch.empty() ? backlog_.pop() : std::move(batch.front()));
    batch.clear();
    Task& task = best->inflight.back();
    ++task.attempts;
    task.sent_to = best->info.rank;
    task.sent_in = best->messages;
    send_blocks_locked(*best, task);
    post_message(comm_, best->info.rank, tag_task, task.message.data(), task.header, task.payload(), tag_task_piece,
                 task.sends);
    posted(*best);
  }
  return progress;
}

void Manager::send_batch_locked(Worker& worker, std::vector<Task>& tasks) {
  BatchSend& send = worker.batches.emplace_back();
  send.bytes.resize(sizeof(MessageHeader));
  for (Task& task : tasks) {
    ++task.attempts;
    task.sent_to = worker.info.rank;
    task.sent_in = worker.messages;
    // Its shared values go ahead of the batch that carries it.
    send_blocks_locked(worker, task);
    std::memcpy(task.message.data(), &task.header, sizeof task.header);
    send.bytes.insert(send.bytes.end(), task.message.begin(), task.message.end());
    // Copied: only a task that may run again elsewhere keeps its bytes.
    if (!keeps_bytes(worker, task)) task.message = std::vector<char>();
    worker.inflight.push_back(std::move(task));
  }
  MessageHeader header;
  header.task_id = tasks.size();
  header.size = send.bytes.size() - sizeof header;
  header.flags = header_batch;
  std::memcpy(send.bytes.data(), &header, sizeof header);
  tasks.clear();
  check(MPI_Isend(send.bytes.data(), static_cast<int>(send.bytes.size()), MPI_BYTE, worker.info.rank, tag_task, comm_,
                  &send.request),
        "MPI_Isend");
}

}  // namespace procpool::mpi::detail
