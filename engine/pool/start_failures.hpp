// When a pool gives up on starting workers and is broken (BrokenPool): its
// workers' initializer keeps throwing, or no worker can be forked for a
// while. Also how a worker hands its initializer's message to the parent.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "engine/ipc/shared_region.hpp"

namespace procpool::detail {

// Initializer failures in a row, per worker of the pool, with no worker
// finishing its initializer in between, that break the pool.
inline constexpr int initializer_failures_per_worker = 3;
// How long the pool may have no worker running while every fork fails.
inline constexpr std::chrono::seconds fork_failure_limit{5};

// In a worker whose initializer threw `what`: leaves the message in its
// slot for the parent, then exits with worker_exit_initializer_failed.
[[noreturn]] void leave_initializer_failed(SlotControl& slot, const char* what) noexcept;
// In the parent, for a worker that exited with `status`: the message of its
// initializer if that is why it left (nullopt otherwise). Clears the slot's
// record for the next worker. Never throws but std::bad_alloc.
std::optional<std::string> take_initializer_error(SlotControl& slot, int status);

// The counts, under the pool mutex (or in the constructor, alone).
class StartFailures {
 public:
  explicit StartFailures(int processes) noexcept : initializer_limit_(initializer_failures_per_worker * processes) {}

  // A worker's initializer threw `message`; `initialized` is
  // PoolControl::workers_initialized now. Returns why the pool is broken, or "".
  std::string initializer_failed(const std::string& message, std::uint64_t initialized);
  // The zygote could not fork a worker (errno `error`) at `now_ns`, while
  // `worker_running` or not. Returns why the pool is broken, or "".
  std::string fork_failed(int error, std::int64_t now_ns, bool worker_running);
  // The zygote forked a worker.
  void forked() noexcept { failing_since_ns_ = 0; }

 private:
  const int initializer_limit_;
  int initializer_failures_ = 0;       // in a row
  std::uint64_t initialized_seen_ = 0;  // workers_initialized at the last failure
  std::int64_t failing_since_ns_ = 0;  // first fork failure with no worker running (0: none)
};

}  // namespace procpool::detail
