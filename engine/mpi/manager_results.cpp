// The manager's receiving side: results (alone or several to a message, a
// large one in pieces) matched to the tasks sent to their worker.
#include <algorithm>
#include <climits>
#include <cstring>
#include <set>
#include <string>

#include "engine/mpi/manager.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// Messages taken per pass, so sends are tested between bursts of results.
constexpr int receive_batch = 64;

std::exception_ptr protocol_error(int source, const std::string& what) {
  return std::make_exception_ptr(
      SerializationError("procpool::mpi: rank " + std::to_string(source) + " sent a malformed result: " + what));
}


}  // namespace

bool Manager::receive_locked(std::vector<Completion>& done) {
  bool progress = false;
  for (int i = 0; i < receive_batch; ++i) {
    int found = 0;
    MPI_Message message = MPI_MESSAGE_NULL;
    MPI_Status status;
    check(MPI_Improbe(MPI_ANY_SOURCE, tag_result, comm_, &found, &message, &status), "MPI_Improbe");
    if (found == 0) break;
    ++results_taken_;
    int count = 0;
    check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    Incoming& incoming = incoming_.emplace_back();
    incoming.source = status.MPI_SOURCE;
    incoming.message.resize(static_cast<std::size_t>(count));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Imrecv(incoming.message.data(), count, MPI_BYTE, &message, &request), "MPI_Imrecv");
    incoming.receives.push_back(request);
    progress = true;
  }
  // A source's pieces are matched in order: its later results wait until the
  // earlier ones have posted their piece receives.
  std::set<int> waiting_sources;
  for (auto it = incoming_.begin(); it != incoming_.end();) {
    if (waiting_sources.count(it->source) != 0 || !advance_locked(*it, done)) {
      if (!it->pieces_posted) waiting_sources.insert(it->source);
      ++it;
      continue;
    }
    it = incoming_.erase(it);
    progress = true;
  }
  return progress;
}

bool Manager::advance_locked(Incoming& incoming, std::vector<Completion>& done) {
  int complete = 0;
  check(MPI_Testall(static_cast<int>(incoming.receives.size()), incoming.receives.data(), &complete,
                    MPI_STATUSES_IGNORE),
        "MPI_Testall");
  if (complete == 0) return false;
  incoming.receives.clear();
  const auto worker = static_cast<std::size_t>(incoming.source - 1);
  if (incoming.message.size() < sizeof(MessageHeader) || worker >= workers_.size()) {
    // Cannot be matched to a task: the worker's stream is broken.
    if (worker < workers_.size()) {
      lose_worker_locked(workers_[worker], protocol_error(incoming.source, "no header"), false, done);
    }
    return true;
  }
  MessageHeader header;
  std::memcpy(&header, incoming.message.data(), sizeof header);
  if (header.piece != 0 && !incoming.pieces_posted) {
    if (header.piece > INT_MAX) {
      lose_worker_locked(workers_[worker], protocol_error(incoming.source, "a piece over INT_MAX bytes"), false,
                         done);
      return true;
    }
    incoming.payload.resize(header.size);
    post_piece_receives(comm_, incoming.source, tag_result_piece, header, incoming.payload.data(), incoming.receives);
    incoming.pieces_posted = true;
    if (!incoming.receives.empty()) return false;
  }
  Worker& w = workers_[worker];
  std::uint64_t answers = 1;
  if ((header.flags & header_batch) == 0) {
    answer_locked(w, header, incoming, nullptr, done);
  } else if (header.piece != 0 || incoming.message.size() != sizeof header + header.size) {
    lose_worker_locked(w, protocol_error(incoming.source, "a batch does not match its header"), false, done);
    return true;
  } else {
    answers = header.task_id;
    std::size_t at = sizeof header;
    for (std::uint64_t i = 0; i < answers; ++i) {
      MessageHeader record;
      if (incoming.message.size() - at < sizeof record) {
        lose_worker_locked(w, protocol_error(incoming.source, "a batch is cut short"), false, done);
        return true;
      }
      std::memcpy(&record, incoming.message.data() + at, sizeof record);
      if (record.piece != 0 || incoming.message.size() - at - sizeof record < record.size) {
        lose_worker_locked(w, protocol_error(incoming.source, "a batch is cut short"), false, done);
        return true;
      }
      if (!answer_locked(w, record, incoming, incoming.message.data() + at, done)) return true;
      at += sizeof record + record.size;
    }
  }
  // Its time per task, while it has more to run; unknown again once it is idle.
  const auto now = std::chrono::steady_clock::now();
  if (w.inflight.empty() || answers == 0) {
    w.per_task = {};
  } else {
    w.per_task = (now - w.busy_since) / static_cast<std::int64_t>(answers);
  }
  w.busy_since = now;
  return true;
}

bool Manager::answer_locked(Worker& w, const MessageHeader& header, Incoming& incoming, const char* record,
                            std::vector<Completion>& done) {
  const auto task = std::find_if(w.inflight.begin(), w.inflight.end(),
                                 [&](const Task& t) { return t.header.task_id == header.task_id; });
  if (task == w.inflight.end()) {
    lose_worker_locked(w, protocol_error(incoming.source, "an unknown task id"), false, done);
    return false;
  }
  if (!task->abandoned) {
    Completion& c = done.emplace_back();
    c.state = std::move(task->state);
    c.ledger = std::move(task->ledger);
    c.pid = header.pid;
    if ((header.flags & header_dropped) != 0) {
      c.error = std::make_exception_ptr(
          PoolTerminated("procpool::mpi::Pool::terminate: the pool was terminated before the task finished"));
    } else if (record != nullptr) {
      // One of a batch: its own copy of its few bytes.
      c.bytes.assign(record + sizeof header, record + sizeof header + header.size);
      c.size = header.size;
    } else if (header.piece == 0 && incoming.message.size() != sizeof header + header.size) {
      c.error = protocol_error(incoming.source, "its size does not match its header");
    } else if (header.piece == 0) {
      c.bytes = std::move(incoming.message);
      c.offset = sizeof header;
      c.size = header.size;
    } else {
      c.bytes = std::move(incoming.payload);
      c.size = header.size;
    }
  }
  // Answered before MPI told us its sends completed: keep their buffers until it does.
  if (!task->sends.empty()) draining_.push_back(std::move(*task));
  w.inflight.erase(task);
  return true;
}

}  // namespace procpool::mpi::detail
