// The tasks the parent has not handed to a worker yet: highest priority
// first, equal priorities in submission order. Tasks of priority 0 (the
// default) sit in a plain deque, so a pool that never uses priorities pays
// one branch per task for them.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>

namespace procpool::detail {

template <class Task>
class Backlog {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  // A new task, after the others of its priority.
  void push_back(Task task, int priority) {
    queue(priority).push_back(std::move(task));
    ++size_;
  }
  // A task that was handed out and came back: before the others of its priority.
  void push_front(Task task, int priority) {
    queue(priority).push_front(std::move(task));
    ++size_;
  }
  // The task to start next; the caller has checked !empty().
  Task& front() noexcept { return next_queue().front(); }
  void pop_front() {
    std::deque<Task>& q = next_queue();
    q.pop_front();
    --size_;
    if (&q != &normal_ && q.empty()) others_.erase(others_.begin());
  }
  // Every task, highest priority first; then empty.
  template <class Take>
  void drain(Take&& take) {
    while (!empty()) {
      take(std::move(front()));
      pop_front();
    }
  }

 private:
  std::deque<Task>& queue(int priority) { return priority == 0 ? normal_ : others_[priority]; }
  // Empty deques never stay in others_, so its first one is the highest non-zero priority.
  std::deque<Task>& next_queue() noexcept {
    if (!others_.empty() && (others_.begin()->first > 0 || normal_.empty())) return others_.begin()->second;
    return normal_;
  }

  std::deque<Task> normal_;                                    // priority 0
  std::map<int, std::deque<Task>, std::greater<int>> others_;  // by priority, highest first
  std::size_t size_ = 0;
};

}  // namespace procpool::detail
