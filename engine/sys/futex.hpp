// Thin wrappers over the futex system call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace procpool::detail {

// Whether the word lives in memory shared between processes (then the kernel
// keys the futex by page, not by address space).
enum class FutexScope { process_private, shared };

// Sleeps while *word == expected, until woken or `timeout` (negative: none)
// has passed. Returns false on time-out. Spurious returns are possible.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout,
                FutexScope scope) noexcept;
void futex_wake_all(const std::atomic<std::uint32_t>& word, FutexScope scope) noexcept;
void futex_wake_one(const std::atomic<std::uint32_t>& word, FutexScope scope) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for about `budget` before the caller sleeps: a wake-up that
// is microseconds away costs no system call. Measured in time, not rounds,
// because a pause instruction lasts from 10 to 140 cycles across CPUs. It
// never calls sched_yield(): against processes that keep a core busy, a
// yield hands the core away for a whole time slice (round trip 1.7-2.3 ms
// with one, 141-153 us without, next to two busy loops on two cores).
template <class Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds budget) {
  if (ready()) return true;
  if (budget.count() <= 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

}  // namespace procpool::detail
