#include "procpool/task_pool.hpp"

namespace procpool {

TaskPool::~TaskPool() { core_->finish(); }

void TaskPool::close() { core_->close(); }
void TaskPool::join() { core_->join(); }
void TaskPool::terminate() { core_->terminate(); }
int TaskPool::size() const { return core_->size(); }

}  // namespace procpool
