// procpool on the workloads that bm_thread_pool.cpp and python_pool.py run too;
// benchmarks/compare.py puts the three side by side. Two workers throughout,
// as in the baselines; each pool is built outside the timed loop.
#include <benchmark/benchmark.h>

#include <csignal>
#include <cstdint>
#include <procpool/procpool.hpp>
#include <vector>

namespace {

constexpr int workers = 2;
constexpr int batch = 10000;

int noop(int x) { return x; }

}  // namespace

// Throughput: apply_async 10000 no-op tasks, then get() all; items_per_second = tasks/s.
static void BM_PoolApplyAsyncNoop(benchmark::State& state) {
  procpool::Pool pool(workers);
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(batch);
  std::int64_t sum = 0;
  for (auto _ : state) {
    results.clear();
    for (int i = 0; i < batch; ++i) results.push_back(pool.apply_async(noop, i));
    for (auto& r : results) sum += r.get();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_PoolApplyAsyncNoop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Latency: one apply_async(noop, i).get() per iteration; real_time is the round trip.
static void BM_PoolRoundTrip(benchmark::State& state) {
  procpool::Pool pool(workers);
  int i = 0;
  for (auto _ : state) {
    int r = pool.apply_async(noop, i++).get();
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_PoolRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Respawn: SIGKILL the only worker, then time until a task's result comes back
// from its replacement (death noticed, zygote forks, task runs).
static void BM_PoolRespawn(benchmark::State& state) {
  procpool::Pool pool(1);
  int i = 0;
  for (auto _ : state) {
    const auto pids = pool.worker_pids();
    if (!pids.empty()) ::kill(pids.front(), SIGKILL);
    int r = -1;
    while (r < 0) {
      try {
        r = pool.apply(noop, i++);
      } catch (const procpool::WorkerLost&) {
        // The kill landed while the task ran on the dying worker: try again.
      }
    }
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_PoolRespawn)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
