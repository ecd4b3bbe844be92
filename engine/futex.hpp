// Thin wrappers over the futex system call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <sched.h>

namespace procpool::detail {

// Whether the word lives in memory shared between processes (then the kernel
// keys the futex by page, not by address space).
enum class FutexScope { process_private, shared };

// Sleeps while *word == expected, until woken or `timeout` (negative: none)
// has passed. Returns false on time-out. Spurious returns are possible.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout,
                FutexScope scope) noexcept;
void futex_wake_all(const std::atomic<std::uint32_t>& word, FutexScope scope) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for about `budget` before the caller sleeps: a wake-up that
// is microseconds away costs no system call. Measured in time, not rounds,
// because a pause instruction lasts from 10 to 140 cycles across CPUs. Past
// the first microseconds it also yields between rounds, so on a machine with
// more runnable threads than cores the thread it waits for can run here.
template <class Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds budget) {
  if (ready()) return true;
  if (budget.count() <= 0) return false;
  constexpr std::chrono::microseconds polite_after{5};
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + budget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return ready();
    if (now - start >= polite_after) sched_yield();
  }
}

}  // namespace procpool::detail
