// A worker's answer to procpool::this_task: whether the parent asked the
// running task to stop (SlotControl::stop_task), and a std::stop_token that
// a watcher thread stops when it does.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <thread>

#include "engine/executor/task_stop.hpp"
#include "engine/ipc/shared_region.hpp"

namespace procpool::detail {

class WorkerStop final : public TaskStopSource {
 public:
  explicit WorkerStop(SlotControl& slot) noexcept : slot_(slot) {}
  WorkerStop(const WorkerStop&) = delete;
  WorkerStop& operator=(const WorkerStop&) = delete;
  // Never called: the worker leaves with _exit, the watcher still asleep.
  ~WorkerStop() = default;

  // Two loads from shared memory: a task may poll it in a tight loop.
  bool stop_requested() const noexcept override;
  // The first call starts the watcher thread; each task's first call makes
  // its stop_source (one allocation). Tasks that never ask cost nothing.
  std::stop_token stop_token() override;

 private:
  void watch() noexcept;

  SlotControl& slot_;
  std::mutex mutex_;               // guards the members below, shared with the watcher
  std::uint64_t token_task_ = 0;   // the task source_ belongs to (0: none)
  std::stop_source source_{std::nostopstate};
  std::thread watcher_;            // started lazily; never joined (the process _exits)
};

}  // namespace procpool::detail
