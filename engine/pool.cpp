#include "procpool/pool.hpp"

#include <sched.h>

#include "engine/pool_core.hpp"

namespace procpool {

int cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

namespace detail {
void submit_task(PoolCore& core, const char* call, std::shared_ptr<ResultStateBase> state,
                 FunctionRef<void(OutputBuffer&)> encode) {
  core.submit(call, std::move(state), encode);
}
void check_running(const PoolCore& core, const char* call) { core.check_running(call); }
void attach_source(PoolCore& core, ResultStateBase& state) { state.set_source(core.weak_from_this()); }
void register_flusher(PoolCore& core, std::weak_ptr<InputFlusher> flusher) { core.register_flusher(std::move(flusher)); }
int worker_count(const PoolCore& core) noexcept { return core.processes(); }
}  // namespace detail

namespace {
PoolOptions with_processes(int processes) {
  if (processes < 1) throw ValueError("procpool::Pool: processes must be at least 1");
  PoolOptions options;
  options.processes = processes;
  return options;
}
}  // namespace

Pool::Pool() : Pool(PoolOptions{}) {}
Pool::Pool(int processes) : Pool(with_processes(processes)) {}
Pool::Pool(PoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {}
Pool::~Pool() { core_->finish(); }

void Pool::close() { core_->close(); }
void Pool::join() { core_->join(); }
void Pool::terminate() { core_->terminate(); }
int Pool::size() const { return core_->size(); }
std::vector<pid_t> Pool::worker_pids() const { return core_->worker_pids(); }

}  // namespace procpool
