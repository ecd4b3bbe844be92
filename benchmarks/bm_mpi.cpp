// procpool::mpi on the workloads of bm_pool.cpp (and python_mpi_futures.py's
// mpi4py.futures), started as `mpirun -n 3 bm_mpi`: two worker ranks, as the
// local pool benchmarks use two workers. Ranks 1 and 2 serve inside Runtime;
// rank 0 runs the benchmarks. benchmarks/compare.py puts them side by side.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <chrono>
#include <procpool/mpi.hpp>
#include <set>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "task_pool_workloads.hpp"

// Throughput: apply_async 10000 no-op tasks to the ranks, then get() all; items_per_second = tasks/s.
// After 3 untimed batches, as python_mpi_futures.py warms up too: the first
// 10,000 tasks of a run also grow MPI's and the allocator's free lists on
// every rank, which made a first timed batch up to 10x slower than the next.
static void BM_MpiApplyAsyncNoop(benchmark::State& state) {
  procpool::mpi::Pool pool;
  benchmark::DoNotOptimize(procpool_bench::run_noops(pool, 3 * procpool_bench::noop_batch));
  procpool_bench::time_apply_async_noop(state, pool);
}
BENCHMARK(BM_MpiApplyAsyncNoop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Latency: one apply_async(noop, i).get() per iteration, rank 0 to a worker rank and back; real_time is the round trip.
static void BM_MpiRoundTrip(benchmark::State& state) {
  procpool::mpi::Pool pool;
  procpool_bench::time_round_trip(state, pool);
}
BENCHMARK(BM_MpiRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A chain of 1000 dependent tasks (AsyncResult arguments), beside the same
// chain written as get()-then-submit; us_per_link is the cost of one link.
static void BM_MpiDependencyChain(benchmark::State& state) {
  procpool::mpi::Pool pool;
  procpool_bench::time_dependency_chain(state, pool);
}
BENCHMARK(BM_MpiDependencyChain)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_MpiGetThenSubmitChain(benchmark::State& state) {
  procpool::mpi::Pool pool;
  procpool_bench::time_get_then_submit_chain(state, pool);
}
BENCHMARK(BM_MpiGetThenSubmitChain)->Unit(benchmark::kMillisecond)->UseRealTime();

static int rank_pid(int delay_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  return static_cast<int>(::getpid());
}

// Idle CPU: every rank (rank 0's manager included) over 5 s (1 s quick) of a
// pool with nothing to do, in % of one core; the worker ranks are this
// host's processes, found by asking them for their pids.
static void BM_MpiIdleCpu(benchmark::State& state) {
  procpool::mpi::Pool pool;
  std::set<int> pids;
  for (int tries = 0; tries < 20 && static_cast<int>(pids.size()) < pool.size(); ++tries) {
    std::vector<procpool::AsyncResult<int>> asked;
    for (int i = 0; i < pool.size(); ++i) asked.push_back(pool.apply_async(rank_pid, 50));
    for (auto& r : asked) pids.insert(r.get());
  }
  pids.insert(static_cast<int>(::getpid()));
  const auto idle = std::chrono::milliseconds(procpool_bench::quick() ? 1000 : 5000);
  for (auto _ : state) {
    auto cpu = [&] {
      double s = 0;
      for (const int pid : pids) s += procpool_bench::cpu_seconds(pid == ::getpid() ? 0 : pid);
      return s;
    };
    // Past the ranks' short spin after their last task.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const double cpu0 = cpu();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(idle);
    const double cpu1 = cpu();
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - t0;
    state.counters["cpu_percent"] = 100 * (cpu1 - cpu0) / wall.count();
    state.counters["processes"] = static_cast<double>(pids.size());
  }
}
BENCHMARK(BM_MpiIdleCpu)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);  // ranks 1..N-1 serve here
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
