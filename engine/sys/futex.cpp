#include "engine/sys/futex.hpp"

#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace procpool::detail {

namespace {

int op(int base, FutexScope scope) { return scope == FutexScope::process_private ? (base | FUTEX_PRIVATE_FLAG) : base; }

// The kernel reads the 32-bit word behind the atomic; std::atomic<uint32_t> is
// lock-free and has the same representation.
std::uint32_t* raw(const std::atomic<std::uint32_t>& word) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
}

}  // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout,
                FutexScope scope) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    tsp = &ts;
  }
  const long rc = syscall(SYS_futex, raw(word), op(FUTEX_WAIT, scope), expected, tsp, nullptr, 0);
  return !(rc == -1 && errno == ETIMEDOUT);
}

void futex_wake_all(const std::atomic<std::uint32_t>& word, FutexScope scope) noexcept {
  syscall(SYS_futex, raw(word), op(FUTEX_WAKE, scope), INT_MAX, nullptr, nullptr, 0);
}

void futex_wake_one(const std::atomic<std::uint32_t>& word, FutexScope scope) noexcept {
  syscall(SYS_futex, raw(word), op(FUTEX_WAKE, scope), 1, nullptr, nullptr, 0);
}

}  // namespace procpool::detail
