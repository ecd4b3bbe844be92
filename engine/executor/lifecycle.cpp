#include "engine/executor/lifecycle.hpp"

#include "procpool/errors.hpp"

namespace procpool::detail {

std::string Lifecycle::message(const char* call, const char* what) const {
  return std::string(name_) + "::" + call + ": " + what;
}

void Lifecycle::check_running(const char* call) const {
  std::lock_guard lock(mutex_);
  check_running_locked(call);
}

void Lifecycle::check_running_locked(const char* call) const {
  if (!broken_.empty()) throw BrokenPool(message(call, ("pool is broken: " + broken_).c_str()));
  if (phase_ != Phase::running) {
    throw ValueError(message(call, phase_ == Phase::closing ? "pool is closed" : "pool is terminated"));
  }
}

void Lifecycle::defer(const char* call) {
  std::lock_guard lock(mutex_);
  check_running_locked(call);
  ++deferred_;
}

void Lifecycle::undefer() noexcept {
  bool last = false;
  {
    std::lock_guard lock(mutex_);
    last = --deferred_ == 0 && phase_ == Phase::closing;
  }
  if (last) {
    deferred_changed_.notify_all();
    steps_.deferred_done();
  }
}

void Lifecycle::wait_deferred() {
  std::unique_lock lock(mutex_);
  deferred_changed_.wait(lock, [&] { return deferred_ == 0 || phase_ == Phase::terminated; });
}

void Lifecycle::check_queueing_locked(const char* call, bool deferred) const {
  if (deferred && broken_.empty() && phase_ == Phase::closing) return;
  check_running_locked(call);
}

void Lifecycle::set_phase_locked(Phase phase) noexcept {
  phase_ = phase;
  stopped_taking_.store(phase != Phase::running, std::memory_order_relaxed);
  if (phase == Phase::terminated) deferred_changed_.notify_all();
}

void Lifecycle::close_locked() noexcept {
  if (phase_ == Phase::running) set_phase_locked(Phase::closing);
}

bool Lifecycle::broken() const {
  std::lock_guard lock(mutex_);
  return !broken_.empty();
}

void Lifecycle::close() {
  // A broken pool has nothing left to close: not the caller's misuse.
  if (broken()) return;
  check_running("close");
  steps_.before_closing();
  {
    std::lock_guard lock(mutex_);
    if (!broken_.empty()) return;
    check_running_locked("close");
    set_phase_locked(Phase::closing);
  }
  steps_.closing();
}

void Lifecycle::join() {
  {
    std::lock_guard lock(mutex_);
    if (phase_ == Phase::running) {
      throw ValueError(message("join", "pool is still running; call close() or terminate() first"));
    }
  }
  std::lock_guard join_lock(join_mutex_);
  if (joined_) return;
  steps_.wait_stopped();
  joined_ = true;
}

void Lifecycle::terminate() {
  const auto error =
      std::make_exception_ptr(PoolTerminated(message("terminate", "the pool was terminated before the task finished")));
  // A broken pool stopped already; it still has to be joined.
  if (stop_now(error, false) || broken()) join();
}

bool Lifecycle::terminate_if_running(const std::exception_ptr& error) { return stop_now(error, true); }

bool Lifecycle::break_pool(const std::string& why) {
  if (!take_unfinished(false, &why)) return false;
  // Made in a statement of its own: the temporary error goes before any task
  // holds a copy (TSan cannot see the count its message shares with them).
  const auto error = std::make_exception_ptr(BrokenPool(std::string(name_) + ": pool is broken: " + why));
  steps_.stop_now(error);
  return true;
}

bool Lifecycle::stop_now(const std::exception_ptr& error, bool only_if_running) {
  {
    const auto outer = steps_.lock_before_terminating();
    if (!take_unfinished(only_if_running, nullptr)) return false;
  }
  steps_.stop_now(error);
  return true;
}

bool Lifecycle::take_unfinished(bool only_if_running, const std::string* broken) {
  std::lock_guard lock(mutex_);
  if (phase_ == Phase::terminated || (only_if_running && phase_ != Phase::running)) return false;
  if (broken != nullptr) broken_ = *broken;
  set_phase_locked(Phase::terminated);
  steps_.take_unfinished_locked();
  return true;
}

void Lifecycle::finish() noexcept {
  try {
    bool running = false;
    {
      std::lock_guard lock(mutex_);
      running = phase_ == Phase::running;
    }
    if (running) {
      steps_.before_closing();
      {
        std::lock_guard lock(mutex_);
        close_locked();
      }
      steps_.closing();
    }
    join();
  } catch (...) {
    // join() throws only while running, which the lines above rule out.
  }
}

}  // namespace procpool::detail
