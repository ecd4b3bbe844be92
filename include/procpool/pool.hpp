// procpool::Pool: a fixed set of worker processes fed through shared-memory rings.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <sys/types.h>
#include <vector>

#include "procpool/task_pool.hpp"

namespace procpool {

// CPUs this process may run on (its affinity mask), at least 1. Thread-safe.
int cpu_count();

struct PoolOptions {
  int processes = 0;                          // 0: procpool::cpu_count()
  std::size_t maxtasksperchild = 0;           // 0: unlimited; else a worker is replaced after that many tasks
  std::function<void()> initializer;          // run once in every worker when it starts
  std::chrono::milliseconds task_timeout{0};  // 0: none
};

// A pool of worker processes, Python's multiprocessing.Pool for C++.
//
//   int square(int x) { return x * x; }
//   ...
//   procpool::Pool pool(4);
//   std::vector<procpool::AsyncResult<int>> results;
//   for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
//   for (auto& r : results) std::cout << r.get() << '\n';
//
// The workers are forked when the pool is built, from a small helper process
// (the zygote) that also forks their replacements; they see the program's
// memory as it was then. A worker that dies fails only the task it was
// running (WorkerLost) and is replaced. The task surface (apply_async, map,
// imap, close, join, terminate, ...) is TaskPool's. Thread-safe.
class Pool : public TaskPool {
 public:
  // cpu_count() workers.
  Pool();
  // `processes` workers; ValueError if processes < 1.
  explicit Pool(int processes);
  // ValueError if options.processes < 0.
  explicit Pool(PoolOptions options);

  // The pids of the current workers (a replacement has a new pid).
  std::vector<pid_t> worker_pids() const;
};

}  // namespace procpool
