#include "engine/pool/worker_stop.hpp"

#include <chrono>

namespace procpool::detail {

bool WorkerStop::stop_requested() const noexcept {
  const std::uint64_t running = slot_.running_task.load(std::memory_order_acquire);
  return running != 0 && slot_.stop_task.load(std::memory_order_acquire) == running;
}

std::stop_token WorkerStop::stop_token() {
  const std::uint64_t running = slot_.running_task.load(std::memory_order_acquire);
  if (running == 0) return {};
  std::stop_source source;
  {
    std::lock_guard lock(mutex_);
    if (!watcher_.joinable()) watcher_ = std::thread([this] { watch(); });
    if (token_task_ != running) {
      source_ = std::stop_source();
      token_task_ = running;
    }
    source = source_;
  }
  // A request made before the token existed: the watcher may have seen it already.
  if (stop_requested()) source.request_stop();
  return source.get_token();
}

void WorkerStop::watch() noexcept {
  std::uint64_t seen = 0;
  for (;;) {
    slot_.stop_bell.wait([&] { return slot_.stop_task.load(std::memory_order_acquire) != seen; },
                         std::chrono::nanoseconds(0));
    seen = slot_.stop_task.load(std::memory_order_acquire);
    std::stop_source source{std::nostopstate};
    {
      std::lock_guard lock(mutex_);
      if (seen != 0 && token_task_ == seen && slot_.running_task.load(std::memory_order_acquire) == seen) source = source_;
    }
    // The task's std::stop_callbacks run here, on this thread, under no lock.
    if (source.stop_possible()) source.request_stop();
  }
}

}  // namespace procpool::detail
