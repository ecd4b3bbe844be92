// bench_support.hpp - what bm_pool.cpp and bm_thread_pool.cpp share besides
// the workloads: the CPU-bound task (python_pool.py has its twin).
#pragma once

#include <cstdint>

namespace procpool_bench {

// The CPU-bound task: 10,000,000 xorshift64 steps, about 9 ms on the 2-core
// EPYC VM. A dependent chain on a seed known only at run time, so the
// compiler can neither fold nor vectorize it.
constexpr std::uint32_t cpu_task_steps = 10'000'000;
constexpr int cpu_tasks = 16;  // per iteration: 8 per worker on 2 workers

inline std::uint64_t cpu_task(std::uint64_t seed) {
  std::uint64_t x = seed | 1;  // xorshift stays at 0 from 0
  for (std::uint32_t i = 0; i < cpu_task_steps; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

}  // namespace procpool_bench
