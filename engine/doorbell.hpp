// A doorbell: how a sleeping side of a ring is woken, without a lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "engine/futex.hpp"

namespace procpool::detail {

// Lives in shared memory. A waiter announces itself in `sleepers`, re-checks
// its condition and sleeps on `seq`; a notifier publishes its data, then rings
// only if someone sleeps, so the hot path costs no system call. A process
// that dies here leaves at worst a stale `sleepers` count: one extra wake-up.
struct Doorbell {
  alignas(64) std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> sleepers{0};

  // Call after publishing (any store the waiter's condition reads).
  void ring() noexcept {
    // A seq_cst read-modify-write orders the caller's publishing store before
    // this read of `sleepers` (a full barrier; unlike a fence, TSan models it).
    if (sleepers.fetch_add(0, std::memory_order_seq_cst) != 0) {
      seq.fetch_add(1, std::memory_order_release);
      futex_wake_all(seq, FutexScope::shared);
    }
  }

  // Ring even if nobody seems to sleep (shutdown, events from other threads).
  void ring_always() noexcept {
    seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(seq, FutexScope::shared);
  }

  // Spins `spins` rounds, then sleeps until ready() or `timeout` (negative:
  // none). Returns ready().
  template <class Ready>
  bool wait(Ready&& ready, int spins, std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    for (int i = 0; i < spins; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    const std::uint32_t observed = seq.load(std::memory_order_acquire);
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (!ready()) futex_wait(seq, observed, timeout, FutexScope::shared);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    return ready();
  }
};

}  // namespace procpool::detail
