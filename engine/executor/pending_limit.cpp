#include "engine/executor/pending_limit.hpp"

#include <chrono>

#include "engine/sys/futex.hpp"

namespace procpool::detail {

namespace {

// How long a blocked submitter pumps results itself before it sleeps, as a
// waiter in AsyncResult::wait() does: a place that frees within microseconds
// costs no futex round trip.
constexpr std::chrono::microseconds pump_spin{50};

thread_local bool exempt = false;

std::uint32_t clamp_max(std::size_t max) noexcept {
  constexpr std::size_t most = (std::size_t{1} << 31) - 1;
  if (max == 0) return 1;
  return static_cast<std::uint32_t>(max < most ? max : most);
}

}  // namespace

PendingLimit::PendingLimit(std::size_t max) noexcept
    : max_(clamp_max(max)), low_(max_ - (max_ / 4 > 1 ? max_ / 4 : 1)) {}

PendingLimit::ExemptScope::ExemptScope() noexcept : was_(exempt) { exempt = true; }
PendingLimit::ExemptScope::~ExemptScope() { exempt = was_; }

bool PendingLimit::acquire(ResultSource* source) noexcept {
  bool waited = false;
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((word & closed_bit) != 0) return false;
    if (exempt || (waited ? word <= low_ : word < max_)) {
      if (word_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // Full: take results ourselves for a moment (they free places), then sleep.
    waited = true;
    if (source != nullptr) {
      source->begin_pumping();
      spin_until(
          [&] {
            source->pump();
            return may_go(word_.load(std::memory_order_acquire));
          },
          pump_spin);
      source->end_pumping();
      source->pump();  // a result published just before end_pumping() woke nobody
    }
    const std::uint32_t wakes = wakes_.load(std::memory_order_seq_cst);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    // seq_cst, against release(): either it sees us waiting, or we see its count.
    if (!may_go(word_.load(std::memory_order_seq_cst))) {
      futex_wait(wakes_, wakes, std::chrono::nanoseconds(-1), FutexScope::process_private);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    word = word_.load(std::memory_order_acquire);
  }
}

void PendingLimit::release() noexcept {
  const std::uint32_t word = word_.fetch_sub(1, std::memory_order_seq_cst) - 1;
  if (waiters_.load(std::memory_order_seq_cst) != 0 && may_go(word)) wake();
}

void PendingLimit::close() noexcept {
  word_.fetch_or(closed_bit, std::memory_order_seq_cst);
  wake();
}

void PendingLimit::wake() noexcept {
  wakes_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(wakes_, FutexScope::process_private);
}

}  // namespace procpool::detail
