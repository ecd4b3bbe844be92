// bm_thread_pool.cpp - the classic thread pool baseline (thread_pool_baseline.hpp)
// run on the same workloads as bm_pool.cpp (procpool) and python_pool.py
// (multiprocessing.Pool). benchmarks/compare.py runs all three side by side.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <numeric>
#include <span>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "thread_pool_baseline.hpp"

namespace {

namespace pb = procpool_bench;

constexpr int kWorkers = 2;
constexpr int kBatch = 10000;
constexpr int kMapItems = 1'000'000;
// BM_ThreadPoolSharedArg / BM_ThreadPoolVectorMap: as bm_data.cpp's shared_bytes, array_floats, array_slices.
constexpr std::size_t kSharedBytes = std::size_t{256} << 20;
constexpr std::size_t kArrayFloats = std::size_t{64} << 20;  // 256 MiB of floats
constexpr std::size_t kArraySlices = 16;                     // 16 MiB per task, 8 per worker
// Python's automatic chunksize: about four chunks per worker (procpool caps its chunks at 4096 items).
constexpr std::size_t kMapChunks = 4 * kWorkers;

int noop(int x) { return x; }
std::vector<char> echo(std::vector<char> bytes) { return bytes; }

// Reads one byte of the shared payload, so the task cannot skip it.
int read_shared(const std::shared_ptr<const std::vector<char>>& bytes, int i) {
    return (*bytes)[static_cast<std::size_t>(i) % bytes->size()] + i;
}

// The map slice task: a read-modify-write of every element, in place.
std::size_t scale_in_place(std::span<float> xs) {
    for (float& x : xs) x = x * 1.0001f + 1.0f;
    return xs.size();
}

// A map chunk task: reads its slice in place (threads share memory) and
// returns its results, as a thread-pool user would write it.
std::vector<int> map_chunk(std::span<const int> items) {
    std::vector<int> out;
    out.reserve(items.size());
    for (int x : items) out.push_back(noop(x));
    return out;
}

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

// Map: 1,000,000 ints as 8 chunk tasks (Python's automatic chunk count; fewer chunks suit threads, which share memory), results concatenated in order; items_per_second = ints/s.
static void BM_ThreadPoolMap(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    std::vector<int> items(kMapItems);
    std::iota(items.begin(), items.end(), 0);
    const std::size_t chunk = (items.size() + kMapChunks - 1) / kMapChunks;
    std::vector<std::future<std::vector<int>>> futures;
    for (auto _ : state) {
        futures.clear();
        for (std::size_t first = 0; first < items.size(); first += chunk) {
            const std::size_t n = std::min(chunk, items.size() - first);
            futures.push_back(pool.submit(map_chunk, std::span<const int>(items).subspan(first, n)));
        }
        std::vector<int> out;
        out.reserve(items.size());
        for (auto& f : futures) {
            const std::vector<int> part = f.get();
            out.insert(out.end(), part.begin(), part.end());
        }
        if (out.size() != items.size() || out.back() != items.back()) {
            state.SkipWithError("map returned the wrong results");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * kMapItems);
}
BENCHMARK(BM_ThreadPoolMap)->Unit(benchmark::kMillisecond)->UseRealTime();

// Echo: submit(echo, std::vector<char> of Arg bytes).get() by value, one at a time; bytes_per_second counts the payload once per round trip (sizes as BM_PoolEcho).
static void BM_ThreadPoolEcho(benchmark::State& state) {
    const auto bytes = static_cast<std::size_t>(state.range(0));
    procpool_bench::ThreadPool pool(kWorkers);
    const std::vector<char> payload = pb::pattern(bytes);
    const pb::MinorFaults faults;
    for (auto _ : state) {
        const std::vector<char> back = pool.submit(echo, payload).get();
        if (!pb::same_echo(back, payload)) {
            state.SkipWithError("echo returned different bytes");
            break;
        }
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
    state.counters["minflt_per_iter"] = faults.per(state.iterations());
}
BENCHMARK(BM_ThreadPoolEcho)->Apply(pb::echo_sizes)->Unit(benchmark::kMillisecond)->UseRealTime();

// Shared argument: a 256 MiB std::vector<char> behind a shared_ptr passed to 10,000 tasks (the thread pool's equivalent of Shared<T>), collected; us_per_task = real time / 10,000.
static void BM_ThreadPoolSharedArg(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    const auto shared = std::make_shared<const std::vector<char>>(pb::pattern(kSharedBytes));
    std::vector<std::future<int>> futures;
    futures.reserve(kBatch);
    std::int64_t sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        futures.clear();
        for (int i = 0; i < kBatch; ++i) futures.push_back(pool.submit(read_shared, shared, i));
        for (auto& f : futures) sum += f.get();
    }
    const std::chrono::duration<double, std::micro> wall = std::chrono::steady_clock::now() - t0;
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations() * kBatch);
    state.counters["us_per_task"] = wall.count() / static_cast<double>(state.iterations() * kBatch);
}
BENCHMARK(BM_ThreadPoolSharedArg)->Unit(benchmark::kMillisecond)->UseRealTime();

// Vector map: x = x * 1.0001f + 1 in place over a 256 MiB std::vector<float>, as kMapSlices slice tasks (bm_data.cpp's BM_PoolSharedArrayMap does the same over a SharedArray<float>); bytes_per_second counts the 256 MiB once per pass.
static void BM_ThreadPoolVectorMap(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    std::vector<float> data(kArrayFloats);
    const std::size_t slice = kArrayFloats / kArraySlices;
    std::vector<std::future<std::size_t>> futures;
    auto pass = [&] {
        futures.clear();
        for (std::size_t first = 0; first < data.size(); first += slice)
            futures.push_back(pool.submit(scale_in_place, std::span<float>(data).subspan(first, slice)));
        std::size_t done = 0;
        for (auto& f : futures) done += f.get();
        return done;
    };
    pass();  // first touch of every page, outside the timed loop
    for (auto _ : state) {
        if (pass() != data.size()) {
            state.SkipWithError("map covered the wrong number of elements");
            break;
        }
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kArrayFloats * sizeof(float)));
}
BENCHMARK(BM_ThreadPoolVectorMap)->Unit(benchmark::kMillisecond)->UseRealTime();

// CPU-bound, serial: the 16 cpu_task()s of BM_ThreadPoolCpuBound one after the other; compare.py divides the two times.
static void BM_SerialCpuBound(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(pb::run_cpu_tasks_serially());
}
BENCHMARK(BM_SerialCpuBound)->Unit(benchmark::kMillisecond)->UseRealTime();

// CPU-bound, pool: submit 16 cpu_task()s (~17 ms each) to Arg threads (1, 2, 4), then get() all; speed-up = serial / this.
static void BM_ThreadPoolCpuBound(benchmark::State& state) {
    procpool_bench::ThreadPool pool(static_cast<std::size_t>(state.range(0)));
    std::vector<std::future<std::uint64_t>> futures;
    for (auto _ : state) {
        futures.clear();
        for (int i = 0; i < pb::cpu_tasks; ++i)
            futures.push_back(pool.submit(pb::cpu_task, static_cast<std::uint64_t>(i)));
        std::uint64_t sum = 0;
        for (auto& f : futures) sum += f.get();
        benchmark::DoNotOptimize(sum);
    }
}
BENCHMARK(BM_ThreadPoolCpuBound)->Apply(pb::cpu_worker_counts)->Unit(benchmark::kMillisecond)->UseRealTime();

// Start/stop: construct a 2-thread pool, run one no-op and get it, destroy (join); real_time per cycle.
static void BM_ThreadPoolStartStop(benchmark::State& state) {
    for (auto _ : state) {
        procpool_bench::ThreadPool pool(kWorkers);
        benchmark::DoNotOptimize(pool.submit(noop, 1).get());
    }
}
BENCHMARK(BM_ThreadPoolStartStop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Idle: a 2-thread pool that has run a task sits 5 s (1 s quick); cpu_percent = this process's CPU, % of one core.
static void BM_ThreadPoolIdleCpu(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    pool.submit(noop, 0).get();
    const auto idle = std::chrono::milliseconds(pb::quick() ? 1000 : 5000);
    for (auto _ : state) {
        const double cpu0 = pb::cpu_seconds(0);
        const auto t0 = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(idle);
        const double cpu1 = pb::cpu_seconds(0);
        const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - t0;
        state.counters["cpu_percent"] = 100 * (cpu1 - cpu0) / wall.count();
    }
}
BENCHMARK(BM_ThreadPoolIdleCpu)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// Last in this program, as in bm_pool.cpp (where a 10,000,000 batch would slow the forks of every pool built after it).
// Throughput at scale: N = 1,000 .. 10,000,000 no-ops submitted, then all
// collected, as bm_pool's BM_PoolApplyAsyncBatch; items_per_second = tasks/s.
static void BM_ThreadPoolApplyAsyncBatch(benchmark::State& state) {
    procpool_bench::ThreadPool pool(kWorkers);
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<std::future<int>> futures;
    futures.reserve(n);
    std::int64_t sum = 0;
    for (auto _ : state) {
        futures.clear();
        for (std::size_t i = 0; i < n; ++i) futures.push_back(pool.submit(noop, static_cast<int>(i)));
        for (auto& f : futures) sum += f.get();
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ThreadPoolApplyAsyncBatch)->Apply(pb::batch_sizes)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
