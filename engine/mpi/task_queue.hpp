// Rank 0's tasks not yet sent to a rank, in the order they leave: higher
// TaskOptions::priority first, then submission order (task ids rise with it,
// and a task queued again after its rank died keeps its place).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/mpi/task.hpp"

namespace procpool::mpi::detail {

class TaskQueue {
 public:
  bool empty() const noexcept { return tasks_.empty(); }
  std::size_t size() const noexcept { return tasks_.size(); }
  // The task to send next, left queued. Not empty.
  const Task& top() const noexcept { return tasks_.begin()->second; }
  // Queues `task` by its priority and header.task_id (not already queued).
  void push(Task task);
  // Takes the task to send next. Not empty.
  Task pop();
  // Takes the task `task_id` out, if queued (a cancel).
  std::optional<Task> take(std::uint64_t task_id);
  // Takes every queued task of pool `pool_id` out (a terminate).
  std::vector<Task> take_pool(std::uint64_t pool_id);
  // Takes every queued task out.
  std::vector<Task> take_all();

 private:
  struct Key {
    int priority;
    std::uint64_t task_id;
  };
  struct Order {
    bool operator()(const Key& a, const Key& b) const noexcept {
      return a.priority != b.priority ? a.priority > b.priority : a.task_id < b.task_id;
    }
  };
  std::map<Key, Task, Order> tasks_;
  // A task's priority by id, so that a cancel finds its key.
  std::unordered_map<std::uint64_t, int> priority_of_;
};

}  // namespace procpool::mpi::detail
