#include "engine/pool/start_failures.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/pool/worker.hpp"

namespace procpool::detail {

void leave_initializer_failed(SlotControl& slot, const char* what) noexcept {
  std::fprintf(stderr, "procpool: a worker's initializer threw: %s\n", what);
  const std::size_t length = ::strnlen(what, initializer_error_bytes - 1);
  std::memcpy(slot.initializer_error, what, length);
  slot.initializer_error[length] = '\0';
  slot.initializer_failed.store(true, std::memory_order_release);
  std::fflush(nullptr);
  ::_exit(worker_exit_initializer_failed);
}

std::optional<std::string> take_initializer_error(SlotControl& slot, int status) {
  if (!slot.initializer_failed.exchange(false, std::memory_order_acquire)) return std::nullopt;
  // A worker that wrote the message and was then killed did not leave for it.
  if (!WIFEXITED(status) || WEXITSTATUS(status) != worker_exit_initializer_failed) return std::nullopt;
  char message[initializer_error_bytes];
  std::memcpy(message, slot.initializer_error, sizeof message);
  message[sizeof message - 1] = '\0';
  return std::string(message);
}

std::string StartFailures::initializer_failed(const std::string& message, std::uint64_t initialized) {
  if (initialized != initialized_seen_) {  // a worker started since the last failure
    initialized_seen_ = initialized;
    initializer_failures_ = 0;
  }
  if (++initializer_failures_ < initializer_limit_) return {};
  return "a worker's initializer threw: " + message + " (" + std::to_string(initializer_failures_) +
         " worker starts failed in a row)";
}

std::string StartFailures::fork_failed(int error, std::int64_t now_ns, bool worker_running) {
  if (worker_running) {
    failing_since_ns_ = 0;
    return {};
  }
  if (failing_since_ns_ == 0) failing_since_ns_ = now_ns;
  if (now_ns - failing_since_ns_ < std::chrono::nanoseconds(fork_failure_limit).count()) return {};
  return "no worker could be started for " + std::to_string(fork_failure_limit.count()) +
         " s: the zygote cannot fork a worker: " + std::strerror(error);
}

}  // namespace procpool::detail
