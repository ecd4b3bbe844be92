// procpool::mpi on the workloads of bm_pool.cpp (and python_mpi_futures.py's
// mpi4py.futures), started as `mpirun -n 3 bm_mpi`: two worker ranks, as the
// local pool benchmarks use two workers. Ranks 1 and 2 serve inside Runtime;
// rank 0 runs the benchmarks. benchmarks/compare.py puts them side by side.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <procpool/mpi.hpp>
#include <vector>

namespace {

constexpr int batch = 10000;

int noop(int x) { return x; }

}  // namespace

// Throughput: apply_async 10000 no-op tasks to the ranks, then get() all; items_per_second = tasks/s.
static void BM_MpiApplyAsyncNoop(benchmark::State& state) {
  procpool::mpi::Pool pool;
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
BENCHMARK(BM_MpiApplyAsyncNoop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Latency: one apply_async(noop, i).get() per iteration, rank 0 to a worker rank and back; real_time is the round trip.
static void BM_MpiRoundTrip(benchmark::State& state) {
  procpool::mpi::Pool pool;
  int i = 0;
  for (auto _ : state) {
    int r = pool.apply_async(noop, i++).get();
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_MpiRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime();

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);  // ranks 1..N-1 serve here
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
