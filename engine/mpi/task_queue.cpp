#include "engine/mpi/task_queue.hpp"

#include <utility>

namespace procpool::mpi::detail {

void TaskQueue::push(Task task) {
  const Key key{task.priority, task.header.task_id};
  priority_of_.emplace(key.task_id, key.priority);
  tasks_.emplace(key, std::move(task));
}

Task TaskQueue::pop() {
  auto node = tasks_.extract(tasks_.begin());
  priority_of_.erase(node.key().task_id);
  return std::move(node.mapped());
}

std::optional<Task> TaskQueue::take(std::uint64_t task_id) {
  const auto found = priority_of_.find(task_id);
  if (found == priority_of_.end()) return std::nullopt;
  auto node = tasks_.extract(Key{found->second, task_id});
  priority_of_.erase(found);
  return std::move(node.mapped());
}

std::vector<Task> TaskQueue::take_pool(std::uint64_t pool_id) {
  std::vector<Task> taken;
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (it->second.header.pool_id != pool_id) {
      ++it;
      continue;
    }
    priority_of_.erase(it->first.task_id);
    taken.push_back(std::move(it->second));
    it = tasks_.erase(it);
  }
  return taken;
}

std::vector<Task> TaskQueue::take_all() {
  std::vector<Task> taken;
  taken.reserve(tasks_.size());
  for (auto& [key, task] : tasks_) taken.push_back(std::move(task));
  tasks_.clear();
  priority_of_.clear();
  return taken;
}

}  // namespace procpool::mpi::detail
