#include "procpool/task_pool.hpp"

namespace procpool {

TaskPool::~TaskPool() { core_->finish(); }

void TaskPool::close() { core_->close(); }
void TaskPool::join() { core_->join(); }
void TaskPool::terminate() { core_->terminate(); }
int TaskPool::size() const { return core_->size(); }

namespace detail {

void Executor::register_flusher(std::weak_ptr<InputFlusher> flusher) {
  std::lock_guard lock(flushers_mutex_);
  std::erase_if(flushers_, [](const auto& f) { return f.expired(); });
  flushers_.push_back(std::move(flusher));
}

void Executor::flush_inputs() noexcept {
  std::vector<std::weak_ptr<InputFlusher>> flushers;
  {
    std::lock_guard lock(flushers_mutex_);
    flushers.swap(flushers_);
  }
  for (auto& weak : flushers) {
    if (auto flusher = weak.lock()) flusher->flush_input();
  }
}

}  // namespace detail

}  // namespace procpool
