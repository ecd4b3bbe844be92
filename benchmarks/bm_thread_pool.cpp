// bm_thread_pool.cpp - the classic thread pool baseline (thread_pool_baseline.hpp)
// run on the same workloads as bm_pool.cpp (procpool) and python_pool.py
// (multiprocessing.Pool). benchmarks/compare.py runs all three side by side.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <future>
#include <vector>

#include "thread_pool_baseline.hpp"

namespace {

constexpr int kWorkers = 2;
constexpr int kBatch = 10000;

int noop(int x) { return x; }

}  // namespace

// Throughput: submit 10000 no-op tasks, then get() all; items_per_second = tasks/s.
static void BM_ThreadPoolApplyAsyncNoop(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    std::vector<std::future<int>> futures;
    futures.reserve(kBatch);
    std::int64_t sum = 0;
    for (auto _ : state) {
        futures.clear();
        for (int i = 0; i < kBatch; ++i) futures.push_back(pool.submit(noop, i));
        for (auto& f : futures) sum += f.get();
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ThreadPoolApplyAsyncNoop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Latency: one submit(noop, i).get() per iteration; real_time is the round trip.
static void BM_ThreadPoolRoundTrip(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    int i = 0;
    for (auto _ : state) {
        int r = pool.submit(noop, i++).get();
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_ThreadPoolRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
