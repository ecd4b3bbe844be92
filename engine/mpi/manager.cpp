#include "engine/mpi/manager.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// While results are out, the manager spins this long on MPI before it
// sleeps on its bell, and sleeps at most this long at first: its time-out,
// doubled up to longest_nap, only guards against a ring that came too early.
constexpr auto manager_spin = std::chrono::microseconds(20);
constexpr auto first_nap = std::chrono::milliseconds(1);
constexpr auto longest_nap = std::chrono::milliseconds(100);
// While a rank's results are on their way, it sleeps this long at most, for
// at most expected_for in a row.
constexpr auto expected_nap = std::chrono::microseconds(100);
constexpr auto expected_for = std::chrono::milliseconds(5);

}  // namespace

Manager::Manager(MPI_Comm comm, std::vector<WorkerInfo> workers, const ManagerOptions& options, RankBells* bells)
    : comm_(comm), max_message_(options.max_message), options_(options), workers_(workers.size()), bells_(bells) {
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
      wake_locked();
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
      wake_locked();
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
    wake_locked();
  }
  if (thread_.joinable()) thread_.join();
  completer_.stop();
}

void Manager::wake_locked() {
  kicked_.store(true);
  wake_.notify_one();
  if (bells_ != nullptr) bells_->of(0).ring();
}

void Manager::ring(const Worker& worker) noexcept {
  if (bells_ != nullptr && worker.info.bell) bells_->of(worker.info.rank).ring();
}

void Manager::posted(Worker& worker) noexcept {
  if (!worker.info.bell) {
    // It sleeps on its RemoteBell once its messages paused (rank_serve.cpp).
    const auto now = std::chrono::steady_clock::now();
    if (now - worker.last_post >= remote_ring_after) heartbeat_.ring(worker.info.rank, worker.info.heartbeat);
    worker.last_post = now;
    return;
  }
  if (bells_ == nullptr) return;
  bells_->posted(worker.info.rank).fetch_add(1);
  bells_->of(worker.info.rank).ring();
}

bool Manager::may_sleep_locked() const {
  // A result coming in needs this side's progress (a large one is read
  // from its rank's memory here); a send does not: over shared memory its
  // bytes are in the receiver's queue, or read from here by the receiver,
  // and MPI reports it complete only once the receiver took it.
  if (bells_ == nullptr || !incoming_.empty()) return false;
  for (const Worker& w : workers_) {
    if (!w.lost && !w.inflight.empty() && !w.info.bell) return false;
  }
  return true;
}

bool Manager::ring_unsent_locked() noexcept {
  bool any = false;
  for (const Worker& w : workers_) {
    bool unsent = !w.batches.empty();
    for (const Task& t : w.inflight) unsent |= !t.sends.empty();
    if (w.lost || !unsent) continue;
    ring(w);
    any = true;
  }
  return any;
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
  auto nap = std::chrono::duration_cast<std::chrono::nanoseconds>(first_nap);
  bool rering = false;
  std::chrono::steady_clock::time_point expected_since{};
  std::unique_lock lock(mutex_);
  for (;;) {
    kicked_.store(false);
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
        // A send MPI could not queue at once (the receiver's queue was
        // full) goes out in a later call here, such as the one above after
        // a sleep that timed out: its rank may be asleep by then, so the
        // ranks with sends still out are rung again, and the manager wakes
        // up again soon while any are.
        if (std::exchange(rering, false) && ring_unsent_locked()) nap = first_nap;
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
      nap = first_nap;
      continue;
    }
    if (may_sleep_locked()) {
      // Only an answer (the rank rings after sending it) or new work
      // (wake_locked) can come. MPI is this thread's alone. While a rank
      // has posted results not yet seen, they are on their way: the manager
      // only dozes (for a while: a count gone wrong must not keep it from
      // sleeping for good).
      const auto now = std::chrono::steady_clock::now();
      const bool fresh = bells_->posted(0).load() != results_taken_;
      if (!fresh) expected_since = {};
      if (fresh && expected_since == std::chrono::steady_clock::time_point{}) expected_since = now;
      const bool expected = fresh && now - expected_since < expected_for;
      lock.unlock();
      const bool woken = bells_->of(0).wait(
          [&] {
            int found = 0;
            MPI_Status status;
            if (kicked_.load()) return true;
            // Twice: one that finds nothing progresses MPI, and what that
            // brings in only the next one finds (see serve()'s probe). A
            // failure ends the wait: the next pass meets it where it is caught.
            for (int i = 0; i < 2 && found == 0; ++i) {
              if (MPI_Iprobe(MPI_ANY_SOURCE, tag_result, comm_, &found, &status) != MPI_SUCCESS) return true;
            }
            return found != 0;
          },
          manager_spin, expected ? expected_nap : nap);
      nap = woken ? std::chrono::nanoseconds(first_nap) : std::min(2 * nap, std::chrono::nanoseconds(longest_nap));
      rering = !woken;
      lock.lock();
      continue;
    }
    lock.unlock();
    backoff.pause();
    lock.lock();
  }
  lock.unlock();
  if (!broken_) send_shutdown();
}

bool Manager::send_cancels_locked() {
  if (cancels_to_send_.empty()) return false;
  for (const std::uint64_t pool : cancels_to_send_) {
    for (Worker& w : workers_) {
      if (w.lost) continue;
      ControlSend& send = control_sends_.emplace_back();
      send.value = pool;
      send.rank = w.info.rank;
      check(MPI_Isend(&send.value, sizeof send.value, MPI_BYTE, w.info.rank, tag_cancel, comm_, &send.request),
            "MPI_Isend");
      posted(w);
    }
  }
  cancels_to_send_.clear();
  return true;
}

bool Manager::test_sends_locked() {
  bool progress = false;
  for (Worker& w : workers_) {
    while (!w.batches.empty()) {
      int complete = 0;
      check(MPI_Test(&w.batches.front().request, &complete, MPI_STATUS_IGNORE), "MPI_Test");
      if (complete == 0) break;
      w.batches.pop_front();
      progress = true;
    }
  }
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
      if (!keeps_bytes(w, t)) {
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
    for (Worker& w : workers_) {
      if (w.lost) continue;
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Isend(&rank_lost, 1, MPI_BYTE, w.info.rank, tag_shutdown, comm_, &request), "MPI_Isend");
      requests.push_back(request);
      posted(w);
    }
    wait_all(requests, "MPI_Testall");
  } catch (const Error&) {
    // The job is going down anyway; MPI_Finalize reports what it can.
  }
}

}  // namespace procpool::mpi::detail
