#include "engine/mpi/manager.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fstream>

#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// Tasks sent ahead to one worker: the one it runs and the next, waiting in
// MPI's queue, so it never waits for rank 0 between two tasks.
constexpr std::size_t tasks_in_flight = 2;
// How often, while tasks are out, rank 0 looks whether a worker on its own
// host still exists (a rank that died under --enable-recovery says nothing).
constexpr auto liveness_period = std::chrono::milliseconds(100);
// Messages taken per pass, so sends are tested between bursts of results.
constexpr int receive_batch = 64;

// Whether a process of this host is gone (a zombie counts as gone).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z';
}

std::exception_ptr protocol_error(int source, const std::string& what) {
  return std::make_exception_ptr(
      SerializationError("procpool::mpi: rank " + std::to_string(source) + " sent a malformed result: " + what));
}

}  // namespace

Manager::Manager(MPI_Comm comm, std::vector<WorkerInfo> workers, std::size_t max_message)
    : comm_(comm), max_message_(max_message), workers_(workers.size()) {
  for (std::size_t i = 0; i < workers.size(); ++i) workers_[i].info = std::move(workers[i]);
  released_ = std::make_shared<procpool::detail::ReleasedBlocks>([this] { release_noticed(); });
  procpool::detail::watch_released_blocks(released_);
  thread_ = std::thread([this] { run(); });
}

Manager::~Manager() { stop(); }

std::uint64_t Manager::new_pool_id() {
  std::lock_guard lock(mutex_);
  return next_pool_++;
}

void Manager::submit(Task task) {
  std::exception_ptr refused;
  {
    std::lock_guard lock(mutex_);
    task.header.task_id = next_task_++;
    task.state->set_task_id(task.header.task_id);  // so that cancel() finds it
    if (cancelled_.count(task.header.pool_id) != 0) {
      refused = std::make_exception_ptr(
          PoolTerminated("procpool::mpi::Pool::terminate: the pool was terminated before the task finished"));
    } else if (broken_) {
      refused = broken_;
    } else if (std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.lost; })) {
      refused = std::make_exception_ptr(WorkerLost("procpool::mpi: every worker rank is gone"));
    } else if (stopping_) {
      refused = std::make_exception_ptr(ValueError("procpool::mpi::Pool: the MPI runtime has ended"));
    } else {
      backlog_.push(std::move(task));
      wake_.notify_one();
      return;
    }
  }
  task.state->fail(refused);
  task.ledger->closed();
}

void Manager::cancel(std::uint64_t pool, const std::exception_ptr& error) {
  std::vector<Task> failed;
  {
    std::lock_guard lock(mutex_);
    cancelled_.insert(pool);
    failed = backlog_.take_pool(pool);
    bool any_sent = false;
    for (Worker& w : workers_) {
      for (Task& t : w.inflight) {
        if (t.header.pool_id != pool || t.abandoned) continue;
        any_sent = true;
        t.abandoned = true;
        Task shell;
        shell.state = std::move(t.state);
        shell.ledger = std::move(t.ledger);
        failed.push_back(std::move(shell));
      }
    }
    if (any_sent) {
      cancels_to_send_.push_back(pool);
      wake_.notify_one();
    }
  }
  for (Task& t : failed) {
    t.state->fail(error);
    t.ledger->closed();
  }
}

void Manager::stop() noexcept {
  std::lock_guard stop_lock(stop_mutex_);
  if (stopped_) return;
  stopped_ = true;
  // No wake after this: the ranks are about to leave, values and all.
  released_->close();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  completer_.stop();
}

bool Manager::idle_locked() const {
  if (!incoming_.empty() || !control_sends_.empty() || !cancels_to_send_.empty() || !task_cancels_to_send_.empty() ||
      !draining_.empty()) {
    return false;
  }
  bool any_live = false;
  for (const Worker& w : workers_) {
    if (!w.inflight.empty()) return false;
    any_live |= !w.lost;
  }
  return backlog_.empty() || !any_live;
}

void Manager::run() {
  on_manager_thread_ = true;
  Backoff backoff;
  std::unique_lock lock(mutex_);
  for (;;) {
    std::vector<Completion> done;
    bool progress = false;
    std::vector<std::uint64_t> released;
    if (releases_pending_.exchange(false)) released = released_->take();
    if (!broken_) {
      try {
        progress |= send_forgets_locked(released);
        progress |= send_cancels_locked();
        progress |= send_task_cancels_locked();
        progress |= dispatch_locked();
        progress |= test_sends_locked();
        progress |= receive_locked(done);
        check_lost_workers_locked(done);
      } catch (const std::exception& e) {
        // An MPI call failed (or memory ran out): nothing can be trusted to arrive any more.
        broken_ = std::make_exception_ptr(WorkerLost(e.what()));
        fail_all_locked(broken_, done);
      }
    }
    if (!done.empty()) {
      lock.unlock();
      completer_.finish(done);
      // Let go of them now, not after the sleep below: a delivered result's
      // state (an imap's chunk holds its imap) and bytes must not stay alive
      // for as long as the manager is idle. Outside mutex_: the last
      // reference may destroy an imap's input range, which is user code.
      done.clear();
      lock.lock();
      progress = true;
    }
    if (idle_locked() || broken_) {
      if (stopping_) break;
      backoff.reset();
      // Nothing out: sleep until a task or a cancel comes, without touching MPI.
      wake_.wait(lock, [&] { return stopping_ || releases_pending_.load() || (!broken_ && !idle_locked()); });
      continue;
    }
    if (progress) {
      backoff.reset();
      continue;
    }
    lock.unlock();
    backoff.pause();
    lock.lock();
  }
  lock.unlock();
  if (!broken_) send_shutdown();
}

bool Manager::dispatch_locked() {
  bool progress = false;
  while (!backlog_.empty()) {
    // The live worker with the fewest tasks out, if it has room.
    Worker* best = nullptr;
    for (Worker& w : workers_) {
      if (w.lost || w.inflight.size() >= tasks_in_flight) continue;
      if (best == nullptr || w.inflight.size() < best->inflight.size()) best = &w;
    }
    if (best == nullptr) break;
    best->inflight.push_back(backlog_.pop());
    Task& task = best->inflight.back();
    ++task.attempts;
    send_blocks_locked(*best, task);
    post_message(comm_, best->info.rank, tag_task, task.message.data(), task.header, task.payload(), tag_task_piece,
                 task.sends);
    progress = true;
  }
  return progress;
}

bool Manager::send_cancels_locked() {
  if (cancels_to_send_.empty()) return false;
  for (const std::uint64_t pool : cancels_to_send_) {
    for (const Worker& w : workers_) {
      if (w.lost) continue;
      ControlSend& send = control_sends_.emplace_back();
      send.value = pool;
      check(MPI_Isend(&send.value, sizeof send.value, MPI_BYTE, w.info.rank, tag_cancel, comm_, &send.request),
            "MPI_Isend");
    }
  }
  cancels_to_send_.clear();
  return true;
}

bool Manager::test_sends_locked() {
  bool progress = false;
  for (Worker& w : workers_) {
    for (Task& t : w.inflight) {
      if (t.sends.empty()) continue;
      int complete = 0;
      check(MPI_Testall(static_cast<int>(t.sends.size()), t.sends.data(), &complete, MPI_STATUSES_IGNORE),
            "MPI_Testall");
      if (complete == 0) continue;
      // Sent: the payload is no longer needed, only the task's identity
      // (unless it may run again, on another rank).
      t.sends.clear();
      t.block_headers = std::vector<char>();
      if (t.retries_left == 0) {
        t.message = std::vector<char>();
        t.mapped.reset();
      }
      progress = true;
    }
  }
  for (auto it = draining_.begin(); it != draining_.end();) {
    int complete = 0;
    check(MPI_Testall(static_cast<int>(it->sends.size()), it->sends.data(), &complete, MPI_STATUSES_IGNORE),
          "MPI_Testall");
    it = complete != 0 ? draining_.erase(it) : std::next(it);
  }
  while (!control_sends_.empty()) {
    int complete = 0;
    check(MPI_Test(&control_sends_.front().request, &complete, MPI_STATUS_IGNORE), "MPI_Test");
    if (complete == 0) break;
    control_sends_.pop_front();
    progress = true;
  }
  return progress;
}

bool Manager::receive_locked(std::vector<Completion>& done) {
  bool progress = false;
  for (int i = 0; i < receive_batch; ++i) {
    int found = 0;
    MPI_Message message = MPI_MESSAGE_NULL;
    MPI_Status status;
    check(MPI_Improbe(MPI_ANY_SOURCE, tag_result, comm_, &found, &message, &status), "MPI_Improbe");
    if (found == 0) break;
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
  const auto task = std::find_if(w.inflight.begin(), w.inflight.end(),
                                 [&](const Task& t) { return t.header.task_id == header.task_id; });
  if (task == w.inflight.end()) {
    lose_worker_locked(w, protocol_error(incoming.source, "an unknown task id"), false, done);
    return true;
  }
  if (!task->abandoned) {
    Completion& c = done.emplace_back();
    c.state = std::move(task->state);
    c.ledger = std::move(task->ledger);
    c.pid = header.pid;
    if ((header.flags & header_dropped) != 0) {
      c.error = std::make_exception_ptr(
          PoolTerminated("procpool::mpi::Pool::terminate: the pool was terminated before the task finished"));
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

void Manager::check_lost_workers_locked(std::vector<Completion>& done) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_liveness_check_ < liveness_period) return;
  last_liveness_check_ = now;
  for (Worker& w : workers_) {
    if (w.lost || w.inflight.empty() || !w.info.same_host || !process_gone(w.info.pid)) continue;
    // How it died is its launcher's to know (it reaps the rank), not ours:
    // signal 0 and exit status -1 say unknown (errors.hpp).
    lose_worker_locked(w,
                       std::make_exception_ptr(WorkerLost("procpool::mpi: worker rank " + std::to_string(w.info.rank) +
                                                              " (pid " + std::to_string(w.info.pid) + " on " +
                                                              w.info.host + ") died while running the task",
                                                          w.info.pid, 0, -1)),
                       true, done);
  }
}

void Manager::lose_worker_locked(Worker& worker, const std::exception_ptr& error, bool retry,
                                 std::vector<Completion>& done) {
  worker.lost = true;
  for (Task& t : worker.inflight) lose_task_locked(t, error, retry, done);
  worker.inflight.clear();
  std::erase_if(incoming_, [&](const Incoming& i) { return i.source == worker.info.rank && i.receives.empty(); });
  if (std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.lost; })) {
    const auto none_left = std::make_exception_ptr(WorkerLost("procpool::mpi: every worker rank is gone"));
    for (Task& t : backlog_.take_all()) fail_later(t, none_left, done);
  }
}

void Manager::fail_all_locked(const std::exception_ptr& error, std::vector<Completion>& done) {
  for (Worker& w : workers_) {
    for (Task& t : w.inflight) {
      if (!t.abandoned) fail_later(t, error, done);
      // Answered (its state is gone): a later cancel() must skip it.
      t.abandoned = true;
    }
  }
  for (Task& t : backlog_.take_all()) fail_later(t, error, done);
}

void Manager::fail_later(Task& task, const std::exception_ptr& error, std::vector<Completion>& done) {
  Completion& c = done.emplace_back();
  c.state = std::move(task.state);
  c.ledger = std::move(task.ledger);
  c.error = error;
}

bool Manager::lost_a_rank() const {
  std::lock_guard lock(mutex_);
  return std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.lost; });
}

void Manager::send_shutdown() noexcept {
  try {
    // Tells the workers whether a rank died: they then skip MPI_Finalize too.
    const char rank_lost = lost_a_rank() ? 1 : 0;
    std::vector<MPI_Request> requests;
    for (const Worker& w : workers_) {
      if (w.lost) continue;
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Isend(&rank_lost, 1, MPI_BYTE, w.info.rank, tag_shutdown, comm_, &request), "MPI_Isend");
      requests.push_back(request);
    }
    wait_all(requests, "MPI_Testall");
  } catch (const Error&) {
    // The job is going down anyway; MPI_Finalize reports what it can.
  }
}

}  // namespace procpool::mpi::detail
