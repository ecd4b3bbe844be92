#include "procpool/detail/result_state.hpp"

#include <cstdio>
#include <utility>

#include "engine/executor/pending_limit.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/sys/futex.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// How long a waiter polls (pumping the pool's result rings) before it
// sleeps: a result that is microseconds away is taken without the cost of a
// futex sleep and wake-up.
constexpr std::chrono::microseconds wait_spin{50};

}  // namespace

thread_local std::vector<std::function<void()>>* deferred_callbacks = nullptr;

ResultStateBase::~ResultStateBase() = default;

void ResultStateBase::wait() const noexcept { wait_for(std::chrono::nanoseconds(-1)); }

bool ResultStateBase::wait_for(std::chrono::nanoseconds timeout) const noexcept {
  if (ready()) return true;
  const bool forever = timeout.count() < 0;
  const auto deadline = std::chrono::steady_clock::now() + (forever ? std::chrono::nanoseconds(0) : timeout);
  if (const auto source = source_.lock()) {
    source->begin_pumping();
    spin_until(
        [&] {
          if (ready() || source->pump()) return ready();
          return !forever && std::chrono::steady_clock::now() >= deadline;
        },
        wait_spin);
    source->end_pumping();
    source->pump();  // a result published just before end_pumping() woke nobody
  }
  while (!ready()) {
    std::chrono::nanoseconds left(-1);
    if (!forever) {
      left = deadline - std::chrono::steady_clock::now();
      if (left.count() <= 0) return false;
    }
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    futex_wait(done_, 0, left, FutexScope::process_private);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

bool ResultStateBase::fail(std::exception_ptr error) noexcept {
  if (!claim()) return false;
  error_ = std::move(error);
  complete();
  return true;
}

std::exception_ptr cancelled_error() {
  return std::make_exception_ptr(Cancelled("procpool::AsyncResult::cancel: the task was cancelled"));
}

bool ResultStateBase::cancel() {
  if (ready()) return false;
  if (whole_ && !whole_->parts.empty()) {
    bool any = false;
    for (const auto& weak : whole_->parts) {
      if (const auto part = weak.lock()) any |= part->cancel();
    }
    if (any) fail(cancelled_error());
    return any;
  }
  // Never queued: nothing to stop (a dependent task checks before it is queued).
  if (task_id() == 0) return fail(cancelled_error());
  if (const auto source = source_.lock()) return source->cancel(*this);
  // No pool behind it any more: it can only have been failed, or be about to.
  return false;
}

bool ResultStateBase::cancel_unstarted() {
  if (ready()) return false;
  if (whole_ && !whole_->parts.empty()) {
    bool any = false;
    for (const auto& weak : whole_->parts) {
      if (const auto part = weak.lock()) any |= part->cancel_unstarted();
    }
    return any;
  }
  if (const auto source = source_.lock()) return source->cancel_unstarted(*this);
  return false;
}

void ResultStateBase::complete() noexcept {
  std::vector<std::function<void()>> callbacks;
  lock_callbacks();
  completed();
  done_.store(1, std::memory_order_seq_cst);
  callbacks.swap(callbacks_);
  unlock_callbacks();
  if (waiters_.load(std::memory_order_seq_cst) != 0) futex_wake_all(done_, FutexScope::process_private);
  give_place_back();  // before the callbacks, which may submit
  if (deferred_callbacks != nullptr) {
    for (auto& callback : callbacks) deferred_callbacks->push_back(std::move(callback));
    return;
  }
  run_callbacks(callbacks);
}

void ResultStateBase::give_place_back() noexcept {
  if (place_) std::exchange(place_, nullptr)->release();
}

namespace {

// Callbacks complete other states, whose callbacks then run nested: a
// then() chain 10,000 links long would go 10,000 frames deep. Past this
// depth they wait in the outermost run's queue instead.
constexpr int max_nested_callbacks = 32;
thread_local int callback_depth = 0;
thread_local std::vector<std::function<void()>>* overflow_callbacks = nullptr;

void run_each(std::vector<std::function<void()>>& callbacks) noexcept {
  ++callback_depth;
  for (auto& c : callbacks) {
    auto callback = std::move(c);  // its captures go as soon as it has run
    try {
      callback();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "procpool: an AsyncResult callback threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "procpool: an AsyncResult callback threw a non-standard exception\n");
    }
  }
  --callback_depth;
  callbacks.clear();
}

}  // namespace

void run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept {
  if (callbacks.empty()) return;
  if (overflow_callbacks != nullptr && callback_depth >= max_nested_callbacks) {
    for (auto& callback : callbacks) overflow_callbacks->push_back(std::move(callback));
    callbacks.clear();
    return;
  }
  if (overflow_callbacks != nullptr) {
    run_each(callbacks);
    return;
  }
  std::vector<std::function<void()>> overflow;
  overflow_callbacks = &overflow;
  run_each(callbacks);
  while (!overflow.empty()) {
    auto batch = std::move(overflow);
    overflow.clear();
    run_each(batch);
  }
  overflow_callbacks = nullptr;
}

void ResultStateBase::on_complete(std::function<void()> callback) {
  lock_callbacks();
  if (!ready()) {
    try {
      callbacks_.push_back(std::move(callback));
    } catch (...) {
      unlock_callbacks();
      throw;
    }
    unlock_callbacks();
    return;
  }
  unlock_callbacks();
  callback();
}

// A three-state futex lock (free, held, held with sleepers): held only to
// add or take callbacks, so it is almost never contended.
void ResultStateBase::lock_callbacks() noexcept {
  std::uint32_t state = 0;
  if (callbacks_lock_.compare_exchange_strong(state, 1, std::memory_order_acquire)) return;
  if (state != 2) state = callbacks_lock_.exchange(2, std::memory_order_acquire);
  while (state != 0) {
    futex_wait(callbacks_lock_, 2, std::chrono::nanoseconds(-1), FutexScope::process_private);
    state = callbacks_lock_.exchange(2, std::memory_order_acquire);
  }
}

void ResultStateBase::unlock_callbacks() noexcept {
  if (callbacks_lock_.exchange(0, std::memory_order_release) == 2) {
    futex_wake_one(callbacks_lock_, FutexScope::process_private);
  }
}

}  // namespace procpool::detail
