// The zygote: a small single-threaded process, forked once when the pool is
// built, that forks every worker (the first ones and their replacements) and
// reaps them. The parent, which has threads by then and may be large, never
// forks again.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <sys/types.h>
#include <vector>

#include "engine/sys/unique_fd.hpp"

namespace procpool::detail {

struct ZygoteRequest {
  // finish: no spawn will be asked for any more; the zygote exits once its
  // last worker is reaped (and reported), instead of waiting for shutdown.
  enum class Op : std::uint32_t { spawn = 1, kill = 2, shutdown = 3, finish = 4 };
  Op op;
  std::int32_t slot;
  std::int32_t pid;     // kill: the worker to signal
  std::int32_t signal;  // kill: the signal
};

struct ZygoteReport {
  enum class Op : std::uint32_t { spawned = 1, exited = 2, spawn_failed = 3 };
  Op op;
  std::int32_t slot;
  std::int32_t pid;
  std::int32_t status;  // exited: the wait status; spawn_failed: errno
};

// Runs in a fresh worker process: (slot, the worker's end of its socket,
// worker number). Must not return. The worker has only fds 0, 1, 2, the
// zygote's `keep_fds` and its socket; every signal at SIG_DFL, none blocked.
using WorkerEntry = std::function<void(int slot, UniqueFd socket, int number)>;

class Zygote {
 public:
  // Forks the zygote. `entry` is called in each worker it forks. The zygote
  // closes every fd it inherits but 0, 1, 2 and `keep_fds` (which its
  // workers inherit in turn), and blocks every signal: it leaves when asked,
  // when the parent is gone, or when SIGKILLed.
  explicit Zygote(WorkerEntry entry, std::vector<int> keep_fds = {});
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;
  // Shuts the zygote down (killing any worker left) and reaps it.
  ~Zygote();

  pid_t pid() const noexcept { return pid_; }
  int control_fd() const noexcept { return control_.get(); }
  // Never blocks for long: the zygote reads its socket all the time.
  void request(const ZygoteRequest& request) noexcept;
  // Reads one report; for `spawned`, also the parent's end of the worker's
  // socket. Returns false at end of stream (the zygote is gone). Blocking.
  bool read_report(ZygoteReport& report, UniqueFd& worker_socket) noexcept;
  // Asks the zygote to kill every worker and exit, then reaps it; after
  // `grace` it is killed outright (its workers die with it: PR_SET_PDEATHSIG).
  void shutdown(std::chrono::milliseconds grace) noexcept;

 private:
  UniqueFd control_;
  pid_t pid_ = -1;
};

}  // namespace procpool::detail
