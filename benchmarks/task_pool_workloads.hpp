// task_pool_workloads.hpp - the no-op workloads that bm_pool.cpp and
// bm_mpi.cpp both time, written once against procpool::TaskPool, so the
// local pool and the MPI pool run exactly the same code.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <procpool/task_pool.hpp>
#include <vector>

namespace procpool_bench {

constexpr int noop_batch = 10000;  // tasks out at once in the throughput figure

inline int noop(int x) { return x; }

// `tasks` no-ops through apply_async, `noop_batch` submitted before any is
// collected; returns the sum of the results. The futures go into `results`,
// reused so that timed loops allocate no vector.
inline std::int64_t run_noops(procpool::TaskPool& pool, std::int64_t tasks,
                              std::vector<procpool::AsyncResult<int>>& results) {
  std::int64_t sum = 0;
  for (std::int64_t done = 0; done < tasks; done += noop_batch) {
    results.clear();
    for (int i = 0; i < noop_batch; ++i) results.push_back(pool.apply_async(noop, i));
    for (auto& r : results) sum += r.get();
  }
  return sum;
}

inline std::int64_t run_noops(procpool::TaskPool& pool, std::int64_t tasks) {
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(noop_batch);
  return run_noops(pool, tasks, results);
}

// Throughput: one batch of no-ops per iteration; items_per_second = tasks/s.
inline void time_apply_async_noop(benchmark::State& state, procpool::TaskPool& pool) {
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(noop_batch);
  std::int64_t sum = 0;
  for (auto _ : state) sum += run_noops(pool, noop_batch, results);
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * noop_batch);
}

// Throughput at scale: state.range(0) no-ops submitted at once, then all
// collected; items_per_second = tasks/s. The results vector is reserved once,
// outside the timed loop (the thread pool's figure does the same).
inline void time_apply_async_batch(benchmark::State& state, procpool::TaskPool& pool) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(n);
  std::int64_t sum = 0;
  for (auto _ : state) {
    results.clear();
    for (std::size_t i = 0; i < n; ++i) results.push_back(pool.apply_async(noop, static_cast<int>(i)));
    for (auto& r : results) sum += r.get();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// Latency: one apply_async(noop, i).get() per iteration; real_time is the round trip.
inline void time_round_trip(benchmark::State& state, procpool::TaskPool& pool) {
  int i = 0;
  for (auto _ : state) {
    int r = pool.apply_async(noop, i++).get();
    benchmark::DoNotOptimize(r);
  }
}

inline int increment(int x) { return x + 1; }
constexpr int chain_links = 1000;  // links per iteration of the chain figures

inline void set_us_per_link(benchmark::State& state, std::chrono::steady_clock::time_point start) {
  const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  state.counters["us_per_link"] = elapsed.count() / (static_cast<double>(state.iterations()) * chain_links);
}

// A chain of dependent tasks, each link taking the previous link's
// AsyncResult as its argument: built at once, run link by link as results
// arrive (the next link is queued by the pool's result thread).
// us_per_link = real time per link.
inline void time_dependency_chain(benchmark::State& state, procpool::TaskPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    procpool::AsyncResult<int> link = pool.apply_async(increment, 0);
    for (int i = 1; i < chain_links; ++i) link = pool.apply_async(increment, link);
    if (link.get() != chain_links) state.SkipWithError("wrong chain result");
  }
  set_us_per_link(state, start);
}

// The same chain the way one writes it without dependencies: wait for each
// link's value, then submit the next one.
inline void time_get_then_submit_chain(benchmark::State& state, procpool::TaskPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    int value = 0;
    for (int i = 0; i < chain_links; ++i) value = pool.apply_async(increment, value).get();
    if (value != chain_links) state.SkipWithError("wrong chain result");
  }
  set_us_per_link(state, start);
}

}  // namespace procpool_bench
