#include "engine/pool/pool_watch.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/pool/slot_table.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

PoolWatch::PoolWatch(const PoolOptions& options, SharedRegion& region, int processes)
    : options_(options),
      region_(region),
      counting_(options.task_timeout.count() > 0),
      timed_out_(std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(processes))) {
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throw Error("procpool::Pool: cannot create an eventfd");
}

void PoolWatch::start(Zygote& zygote, SlotTable& table, Lifecycle& lifecycle, std::function<void()> wake_results) {
  zygote_ = &zygote;
  table_ = &table;
  lifecycle_ = &lifecycle;
  wake_results_ = std::move(wake_results);
  thread_ = std::thread([this] { loop(); });
}

void PoolWatch::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  wake();
  if (thread_.joinable()) thread_.join();
}

void PoolWatch::push(Event event) {
  std::lock_guard lock(events_mutex_);
  events_.push_back(std::move(event));
}

std::vector<PoolWatch::Event> PoolWatch::take_events() {
  std::vector<Event> events;
  std::lock_guard lock(events_mutex_);
  events.swap(events_);
  return events;
}

std::int64_t PoolWatch::now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void PoolWatch::wake() const noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_.get(), &one, sizeof one);
}

void PoolWatch::count_changed(std::ptrdiff_t delta) noexcept {
  const std::size_t before = inflight_total_.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
  // Wake the watch so it starts watching the clock.
  if (before == 0 && delta > 0) wake();
}

std::uint64_t PoolWatch::take_timed_out(int slot) noexcept {
  return timed_out_[static_cast<std::size_t>(slot)].exchange(0);
}

void PoolWatch::retry_at_locked(std::int64_t when_ns) noexcept {
  const std::int64_t next = next_retry_ns_.load(std::memory_order_relaxed);
  if (next == 0 || when_ns < next) {
    next_retry_ns_.store(when_ns, std::memory_order_relaxed);
    wake();
  }
}

int PoolWatch::poll_timeout_ms() const {
  int wait_ms = -1;
  std::int64_t limit_ms = 0;
  if (const auto timeout = options_.task_timeout.count(); timeout > 0 && inflight_total_.load(std::memory_order_relaxed) != 0) {
    limit_ms = timeout;
  }
  if (watched_count_.load(std::memory_order_relaxed) != 0) {
    const std::int64_t watched_ms = watched_min_ns_.load(std::memory_order_relaxed) / 1'000'000;
    limit_ms = limit_ms == 0 ? watched_ms : std::min(limit_ms, watched_ms);
    limit_ms = std::max<std::int64_t>(limit_ms, 1);
  }
  if (limit_ms > 0) {
    // Check four times per time-out period: a task is killed at most 25% late.
    wait_ms = static_cast<int>(std::clamp<std::int64_t>(limit_ms / 4, 1, 100));
  }
  if (const std::int64_t retry = next_retry_ns_.load(std::memory_order_relaxed); retry != 0) {
    const auto until_retry = static_cast<int>(std::clamp<std::int64_t>((retry - now_ns()) / 1'000'000 + 1, 0, 1000));
    wait_ms = wait_ms < 0 ? until_retry : std::min(wait_ms, until_retry);
  }
  return wait_ms;
}

void PoolWatch::retry_spawns() {
  bool gave_up = false;
  {
    std::lock_guard lock(lifecycle_->mutex());
    const bool needed = table_->worker_needed_locked(lifecycle_->phase_locked());
    const auto spawn = [&](int slot) { zygote_->request({ZygoteRequest::Op::spawn, slot, 0, 0}); };
    next_retry_ns_.store(table_->retry_due_locked(now_ns(), needed, spawn, gave_up), std::memory_order_relaxed);
  }
  if (gave_up) wake_results_();  // a closed pool may have no worker left to wait for
}

void PoolWatch::check_running_tasks() {
  const std::int64_t now = now_ns();
  const std::int64_t pool_limit = std::chrono::nanoseconds(options_.task_timeout).count();
  std::lock_guard lock(lifecycle_->mutex());
  std::lock_guard watched(watched_mutex_);
  for (int i = 0; i < table_->size(); ++i) {
    SlotControl& shared = region_.slot(i);
    const std::uint64_t task = shared.running_task.load(std::memory_order_acquire);
    const WorkerSlot& slot = table_->slot(i);
    if (task == 0 || slot.state != WorkerSlot::State::running) continue;
    const auto found = watched_.empty() ? watched_.end() : watched_.find(task);
    Watched* w = found == watched_.end() ? nullptr : &found->second;
    const std::int64_t ran = now - shared.started_ns.load(std::memory_order_relaxed);
    const std::int64_t limit = w != nullptr && w->timeout_ns > 0 ? w->timeout_ns : pool_limit;
    // Killed only if still running `task`: a worker that finished it meanwhile
    // sees kill_for and leaves before its next task (see SlotControl).
    const auto kill = [&] {
      shared.kill_for.store(task, std::memory_order_seq_cst);
      if (shared.running_task.load(std::memory_order_seq_cst) == task) {
        zygote_->request({ZygoteRequest::Op::kill, i, slot.pid, SIGKILL});
      }
    };
    if (limit > 0 && ran >= limit) {
      if (timed_out_[static_cast<std::size_t>(i)].exchange(task) != task) kill();
    } else if (w != nullptr && w->cancel_at_ns != 0 && now >= w->cancel_at_ns) {
      kill();  // once: forgotten below
    } else if (w != nullptr && w->soft_timeout_ns > 0 && !w->soft_sent && ran >= w->soft_timeout_ns) {
      w->soft_sent = true;
      shared.stop_task.store(task, std::memory_order_release);
      shared.stop_bell.ring();
    }
  }
  forget_watched_locked(now);
}

void PoolWatch::forget_watched_locked(std::int64_t now) noexcept {
  if (watched_.empty()) return;
  std::int64_t shortest = 0;
  for (auto it = watched_.begin(); it != watched_.end();) {
    const Watched& w = it->second;
    // A cancelled task is kept until its grace is over (and its kill, if due, asked for above).
    bool done = w.cancel_at_ns != 0 && now >= w.cancel_at_ns;
    if (w.cancel_at_ns == 0) {
      const auto state = w.state.lock();
      done = !state || state->ready();
    }
    if (done) {
      it = watched_.erase(it);
      continue;
    }
    for (const std::int64_t limit : {w.timeout_ns, w.soft_timeout_ns, w.cancel_at_ns != 0 ? w.cancel_at_ns - now : 0}) {
      if (limit > 0) shortest = shortest == 0 ? limit : std::min(shortest, limit);
    }
    ++it;
  }
  watched_min_ns_.store(shortest, std::memory_order_relaxed);
  watched_count_.store(watched_.size(), std::memory_order_relaxed);
}

void PoolWatch::watch_task(std::uint64_t id, const TaskOptions& options, const std::weak_ptr<ResultStateBase>& state) {
  const std::int64_t hard = std::chrono::nanoseconds(options.timeout).count();
  const std::int64_t soft = std::chrono::nanoseconds(options.soft_timeout).count();
  bool first = false;
  {
    std::lock_guard lock(watched_mutex_);
    first = watched_.empty();
    Watched& w = watched_[id];
    w.timeout_ns = hard;
    w.soft_timeout_ns = soft;
    w.soft_sent = false;  // a new run (a retry) gets its own
    w.state = state;
    watched_count_.store(watched_.size(), std::memory_order_relaxed);
  }
  note_limit(hard > 0 && soft > 0 ? std::min(hard, soft) : std::max(hard, soft), first);
}

void PoolWatch::watch_cancelled(std::uint64_t id) {
  const std::int64_t grace = std::chrono::nanoseconds(options_.cancel_grace).count();
  bool first = false;
  {
    std::lock_guard lock(watched_mutex_);
    first = watched_.empty();
    watched_[id].cancel_at_ns = now_ns() + grace;
    watched_count_.store(watched_.size(), std::memory_order_relaxed);
  }
  note_limit(std::max<std::int64_t>(grace, 1), first);
}

void PoolWatch::note_limit(std::int64_t limit_ns, bool first) noexcept {
  std::int64_t seen = watched_min_ns_.load(std::memory_order_relaxed);
  while ((first || seen == 0 || limit_ns < seen) &&
         !watched_min_ns_.compare_exchange_weak(seen, limit_ns, std::memory_order_relaxed)) {
  }
  // The thread may sleep without a time-out, or for longer than this allows.
  if (first || seen == 0 || limit_ns < seen) wake();
}

void PoolWatch::loop() {
  bool stopping = false;
  while (!stopping) {
    pollfd fds[2] = {{zygote_->control_fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, poll_timeout_ms()) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (counting_ || watched_count_.load(std::memory_order_relaxed) != 0) check_running_tasks();
    if (const std::int64_t retry = next_retry_ns_.load(std::memory_order_relaxed); retry != 0 && retry <= now_ns()) {
      retry_spawns();
    }
    if (fds[1].revents != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto n = ::read(wake_.get(), &count, sizeof count);
      stopping = stop_.load(std::memory_order_acquire);
      continue;
    }
    if (fds[0].revents == 0) continue;
    Event event{};
    const bool alive = zygote_->read_report(event.report, event.socket);
    if (!alive) event.kind = Event::Kind::zygote_ended;
    push(std::move(event));
    wake_results_();
    if (!alive) return;
  }
}

}  // namespace procpool::detail
