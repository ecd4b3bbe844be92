// A doorbell: how a sleeping side of a ring is woken, without a lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "engine/sys/futex.hpp"
#include "engine/sys/constants.hpp"

namespace procpool::detail {

// Lives in shared memory. A waiter announces itself in `sleepers`, re-checks
// its condition and sleeps on `seq`; a notifier publishes its data, then rings
// only if someone sleeps, so the hot path costs no system call. One waiter
// at a time per bell. A process that dies here leaves at worst a stale
// `sleepers` count: one extra wake-up.
struct Doorbell {
  alignas(cache_line) std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> sleepers{0};

  // Call after publishing (any store the waiter's condition reads).
  void ring() noexcept {
    // A seq_cst read-modify-write orders the caller's publishing store before
    // this read of `sleepers` (a full barrier; unlike a fence, TSan models it).
    // The first ringer clears `sleepers`, so a burst of rings while the waiter
    // is still on its way to sleep costs one system call, not one each.
    if (sleepers.exchange(0, std::memory_order_seq_cst) != 0) ring_always();
  }

  // Ring even if nobody seems to sleep (shutdown, events from other threads).
  void ring_always() noexcept {
    seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(seq, FutexScope::shared);
  }

  // Spins for `spin`, then sleeps until ready() or `timeout` (negative:
  // none). Returns ready().
  template <class Ready>
  bool wait(Ready&& ready, std::chrono::nanoseconds spin, std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    if (spin_until(ready, spin)) return true;
    const std::uint32_t observed = seq.load(std::memory_order_acquire);
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (!ready()) futex_wait(seq, observed, timeout, FutexScope::shared);
    // Withdraw, unless a ringer already cleared the count. Sound because each
    // bell has one waiter at a time (its worker, or the result thread).
    std::uint32_t announced = sleepers.load(std::memory_order_relaxed);
    while (announced != 0 && !sleepers.compare_exchange_weak(announced, announced - 1, std::memory_order_relaxed)) {
    }
    return ready();
  }
};

}  // namespace procpool::detail
