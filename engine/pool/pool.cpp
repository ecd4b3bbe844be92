#include "procpool/pool.hpp"

#include <sched.h>

#include "engine/pool/pool_core.hpp"

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
Pool::Pool(PoolOptions options) : TaskPool(detail::PoolCore::create(std::move(options))) {}

std::vector<pid_t> Pool::worker_pids() const { return static_cast<const detail::PoolCore&>(executor()).worker_pids(); }

PoolStats Pool::stats() const { return static_cast<const detail::PoolCore&>(executor()).stats(); }

}  // namespace procpool
