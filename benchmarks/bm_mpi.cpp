// procpool::mpi on the workloads of bm_pool.cpp (and python_mpi_futures.py's
// mpi4py.futures), started as `mpirun -n 3 bm_mpi`: two worker ranks, as the
// local pool benchmarks use two workers. Ranks 1 and 2 serve inside Runtime;
// rank 0 runs the benchmarks. benchmarks/compare.py puts them side by side.
#include <benchmark/benchmark.h>

#include <procpool/mpi.hpp>

#include "task_pool_workloads.hpp"

// Throughput: apply_async 10000 no-op tasks to the ranks, then get() all; items_per_second = tasks/s.
static void BM_MpiApplyAsyncNoop(benchmark::State& state) {
  procpool::mpi::Pool pool;
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

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);  // ranks 1..N-1 serve here
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
