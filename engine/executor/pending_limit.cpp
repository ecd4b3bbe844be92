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

PendingLimit::PendingLimit(std::size_t max) noexcept : max_(clamp_max(max)) {}

PendingLimit::ExemptScope::ExemptScope() noexcept : was_(exempt) { exempt = true; }
PendingLimit::ExemptScope::~ExemptScope() { exempt = was_; }

bool PendingLimit::acquire(ResultSource* source) noexcept {
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((word & closed_bit) != 0) return false;
    if (word < max_ || exempt) {
      if (word_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // Full: take results ourselves for a moment (they free places), then sleep.
    const std::uint32_t seen = word;
    if (source != nullptr) {
      source->begin_pumping();
      spin_until(
          [&] {
            source->pump();
            return word_.load(std::memory_order_acquire) != seen;
          },
          pump_spin);
      source->end_pumping();
      source->pump();  // a result published just before end_pumping() woke nobody
    }
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    futex_wait(word_, seen, std::chrono::nanoseconds(-1), FutexScope::process_private);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    word = word_.load(std::memory_order_acquire);
  }
}

void PendingLimit::release() noexcept {
  // seq_cst, against acquire()'s waiters_ increment: either it sees our
  // change in the futex word, or we see it waiting.
  word_.fetch_sub(1, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst) != 0) futex_wake_all(word_, FutexScope::process_private);
}

void PendingLimit::close() noexcept {
  word_.fetch_or(closed_bit, std::memory_order_seq_cst);
  futex_wake_all(word_, FutexScope::process_private);
}

}  // namespace procpool::detail
