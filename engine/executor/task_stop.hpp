// The stop request of the task running in this process, behind
// procpool::this_task: the worker loop that runs tasks here provides it.
#pragma once

#include <stop_token>

namespace procpool::detail {

class TaskStopSource {
 public:
  virtual bool stop_requested() const noexcept = 0;
  // A token that stops when the running task is asked to stop.
  virtual std::stop_token stop_token() = 0;

 protected:
  ~TaskStopSource() = default;
};

// Set once by a worker before it runs tasks (nullptr: none; this_task then
// answers "no stop requested"). The source must outlive every task.
void set_task_stop_source(TaskStopSource* source) noexcept;

}  // namespace procpool::detail
