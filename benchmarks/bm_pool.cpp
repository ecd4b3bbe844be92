// procpool on the workloads that bm_thread_pool.cpp and python_pool.py run too;
// benchmarks/compare.py puts the three side by side. Two workers throughout,
// as in the baselines; each pool is built outside the timed loop, except in
// BM_PoolStartStop, which times exactly that.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <procpool/procpool.hpp>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "task_pool_workloads.hpp"

namespace {

namespace pb = procpool_bench;

constexpr int workers = 2;
constexpr int map_items = 1'000'000;
constexpr std::size_t echo_bytes = std::size_t{16} << 20;

using pb::noop;
std::vector<char> echo(std::vector<char> bytes) { return bytes; }

double pss_kib_sum(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (const pid_t pid : pids) sum += pb::pss_kib(pid);
  return sum;
}

}  // namespace

// Throughput: apply_async 10000 no-op tasks, then get() all; items_per_second = tasks/s.
static void BM_PoolApplyAsyncNoop(benchmark::State& state) {
  procpool::Pool pool(workers);
  pb::time_apply_async_noop(state, pool);
}
BENCHMARK(BM_PoolApplyAsyncNoop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Latency: one apply_async(noop, i).get() per iteration; real_time is the round trip.
static void BM_PoolRoundTrip(benchmark::State& state) {
  procpool::Pool pool(workers);
  pb::time_round_trip(state, pool);
}
BENCHMARK(BM_PoolRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A chain of 1000 dependent tasks (AsyncResult arguments), beside the same
// chain written as get()-then-submit; us_per_link is the cost of one link.
static void BM_PoolDependencyChain(benchmark::State& state) {
  procpool::Pool pool(workers);
  pb::time_dependency_chain(state, pool);
}
BENCHMARK(BM_PoolDependencyChain)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_PoolGetThenSubmitChain(benchmark::State& state) {
  procpool::Pool pool(workers);
  pb::time_get_then_submit_chain(state, pool);
}
BENCHMARK(BM_PoolGetThenSubmitChain)->Unit(benchmark::kMillisecond)->UseRealTime();

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

// Map: pool.map(noop, 1,000,000 ints), automatic chunksize (245 chunks of at most 4096 items); items_per_second = ints/s.
static void BM_PoolMap(benchmark::State& state) {
  procpool::Pool pool(workers);
  std::vector<int> items(map_items);
  std::iota(items.begin(), items.end(), 0);
  for (auto _ : state) {
    const std::vector<int> out = pool.map(noop, items);
    if (out.size() != items.size() || out.back() != items.back()) {
      state.SkipWithError("map returned the wrong results");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * map_items);
}
BENCHMARK(BM_PoolMap)->Unit(benchmark::kMillisecond)->UseRealTime();

// Echo: apply_async(echo, std::vector<char> of Arg bytes).get(), one at a time; bytes_per_second counts the payload once per round trip.
// Sizes 1 KiB, 64 KiB, 1 MiB, 16 MiB, 256 MiB (compare.py plots the curve); minflt_per_iter = this process's page faults per round trip.
static void BM_PoolEcho(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  procpool::Pool pool(workers);
  const std::vector<char> payload = pb::pattern(bytes);
  // Steady state: the pool's payload arenas fault their pages in on the first large payload only.
  (void)pool.apply_async(echo, payload).get();
  const pb::MinorFaults faults;
  for (auto _ : state) {
    const std::vector<char> back = pool.apply_async(echo, payload).get();
    if (!pb::same_echo(back, payload)) {
      state.SkipWithError("echo returned different bytes");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
  state.counters["minflt_per_iter"] = faults.per(state.iterations());
}
BENCHMARK(BM_PoolEcho)->Apply(pb::echo_sizes)->Unit(benchmark::kMillisecond)->UseRealTime();

// Ceiling for the 16 MiB echo: one memcpy of 16 MiB between two warm buffers; bytes_per_second counts 16 MiB per copy.
static void BM_Memcpy16MiB(benchmark::State& state) {
  const std::vector<char> from = pb::pattern(echo_bytes);
  std::vector<char> to(echo_bytes);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), echo_bytes);
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(echo_bytes));
}
BENCHMARK(BM_Memcpy16MiB)->Unit(benchmark::kMillisecond)->UseRealTime();

// Floor for the 16 MiB echo: allocate a fresh std::vector<char> of 16 MiB and fill it (a copy of a warm buffer), freed each time, with this process's malloc; minflt_per_iter shows whether the heap kept its pages.
static void BM_FreshVector16MiB(benchmark::State& state) {
  const std::vector<char> from = pb::pattern(echo_bytes);
  const pb::MinorFaults faults;
  for (auto _ : state) {
    std::vector<char> fresh(from.begin(), from.end());
    benchmark::DoNotOptimize(fresh.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(echo_bytes));
  state.counters["minflt_per_iter"] = faults.per(state.iterations());
}
BENCHMARK(BM_FreshVector16MiB)->Unit(benchmark::kMillisecond)->UseRealTime();

// CPU-bound, serial: the 16 cpu_task()s of BM_PoolCpuBound run one after the other here; compare.py divides the two times.
static void BM_SerialCpuBound(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(pb::run_cpu_tasks_serially());
}
BENCHMARK(BM_SerialCpuBound)->Unit(benchmark::kMillisecond)->UseRealTime();

// CPU-bound, pool: apply_async 16 cpu_task()s (~17 ms each) on Arg workers (1, 2, 4), then get() all; speed-up = serial / this.
static void BM_PoolCpuBound(benchmark::State& state) {
  procpool::Pool pool(static_cast<int>(state.range(0)));
  std::vector<procpool::AsyncResult<std::uint64_t>> results;
  for (auto _ : state) {
    results.clear();
    for (int i = 0; i < pb::cpu_tasks; ++i) results.push_back(pool.apply_async(pb::cpu_task, static_cast<std::uint64_t>(i)));
    std::uint64_t sum = 0;
    for (auto& r : results) sum += r.get();
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_PoolCpuBound)->Apply(pb::cpu_worker_counts)->Unit(benchmark::kMillisecond)->UseRealTime();

// Start/stop: build Pool(2), apply one no-op, close() + join(); real_time per cycle.
static void BM_PoolStartStop(benchmark::State& state) {
  for (auto _ : state) {
    procpool::Pool pool(workers);
    benchmark::DoNotOptimize(pool.apply(noop, 1));
    pool.close();
    pool.join();
  }
}
BENCHMARK(BM_PoolStartStop)->Unit(benchmark::kMillisecond)->UseRealTime();

// Idle: a Pool(2) that has run a task sits 5 s (1 s quick); cpu_percent = CPU of parent + zygote + workers, % of one core.
static void BM_PoolIdleCpu(benchmark::State& state) {
  procpool::Pool pool(workers);
  pool.apply(noop, 0);
  (void)pool.worker_pids();  // returns once every worker is forked: all are scanned below
  const auto idle = std::chrono::milliseconds(pb::quick() ? 1000 : 5000);
  const std::vector<pid_t> children = pb::descendants(::getpid());  // scanned before the clocks start
  for (auto _ : state) {
    auto cpu = [&] {
      double s = pb::cpu_seconds(0);
      for (const pid_t pid : children) s += pb::cpu_seconds(pid);
      return s;
    };
    const double cpu0 = cpu();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(idle);
    const double cpu1 = cpu();
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - t0;
    if (pb::descendants(::getpid()) != children) {
      state.SkipWithError("a pool process started or ended while idle");
      break;
    }
    state.counters["cpu_percent"] = 100 * (cpu1 - cpu0) / wall.count();
    state.counters["processes"] = static_cast<double>(children.size() + 1);
  }
}
BENCHMARK(BM_PoolIdleCpu)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// Memory: workers' PSS after 100k warm-up no-ops and after 10M more (1M quick); growth_bytes_per_task = their PSS growth / tasks.
static void BM_PoolWorkerMemory(benchmark::State& state) {
  procpool::Pool pool(workers);
  benchmark::DoNotOptimize(pb::run_noops(pool, 100'000));
  const std::int64_t tasks = pb::quick() ? 1'000'000 : 10'000'000;
  for (auto _ : state) {
    auto pids = pool.worker_pids();
    std::sort(pids.begin(), pids.end());
    std::vector<pid_t> others = pb::descendants(::getpid());  // the zygote
    std::erase_if(others, [&](pid_t p) { return std::binary_search(pids.begin(), pids.end(), p); });
    const double before = pss_kib_sum(pids);
    const double parent_before = pb::pss_kib(0);
    benchmark::DoNotOptimize(pb::run_noops(pool, tasks));
    const double after = pss_kib_sum(pids);
    const double parent_after = pb::pss_kib(0);
    auto pids_after = pool.worker_pids();
    std::sort(pids_after.begin(), pids_after.end());
    if (pids_after != pids || before <= 0 || after <= 0) {
      state.SkipWithError("a worker was replaced, or its smaps_rollup is unreadable");
      break;
    }
    const auto n = static_cast<double>(pids.size());
    state.counters["pss_kib_per_worker_before"] = before / n;
    state.counters["pss_kib_per_worker_after"] = after / n;
    state.counters["pss_kib_zygote"] = pss_kib_sum(others);
    state.counters["growth_bytes_per_task"] = (after - before) * 1024 / static_cast<double>(tasks);
    state.counters["parent_growth_bytes_per_task"] = (parent_after - parent_before) * 1024 / static_cast<double>(tasks);
    state.counters["tasks"] = static_cast<double>(tasks);
  }
}
BENCHMARK(BM_PoolWorkerMemory)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// Last in this program: a batch of 10,000,000 leaves the parent's heap large,
// and every pool built after it forks from that (slower forks: start/stop,
// respawn).
// Throughput at scale: N = 1,000 .. 10,000,000 no-ops submitted, then all
// collected (each N a fresh batch; the first iteration also pays for fresh
// memory, as a user's one big batch does); items_per_second = tasks/s.
static void BM_PoolApplyAsyncBatch(benchmark::State& state) {
  procpool::Pool pool(workers);
  pb::time_apply_async_batch(state, pool);
}
BENCHMARK(BM_PoolApplyAsyncBatch)->Apply(pb::batch_sizes)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
