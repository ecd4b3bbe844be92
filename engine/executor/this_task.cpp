#include "procpool/this_task.hpp"

#include <atomic>

#include "engine/executor/task_stop.hpp"

namespace procpool::detail {

namespace {

// Process-wide: a task's own threads may ask too.
std::atomic<TaskStopSource*> task_stop_source{nullptr};

}  // namespace

void set_task_stop_source(TaskStopSource* source) noexcept { task_stop_source.store(source, std::memory_order_release); }

}  // namespace procpool::detail

namespace procpool::this_task {

bool stop_requested() noexcept {
  const auto* source = detail::task_stop_source.load(std::memory_order_acquire);
  return source != nullptr && source->stop_requested();
}

std::stop_token stop_token() {
  auto* source = detail::task_stop_source.load(std::memory_order_acquire);
  return source != nullptr ? source->stop_token() : std::stop_token{};
}

}  // namespace procpool::this_task
