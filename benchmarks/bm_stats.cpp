// What observing a pool costs: the no-op apply_async throughput of
// bm_pool's BM_PoolApplyAsyncNoop (batches of 10,000, two workers) with and
// without a thread calling Pool::stats() every 100 ms, and with and without
// PoolOptions::trace_path. After an untimed warm-up round of each side, each
// figure alternates its two sides in rounds (AB BA AB ...) in one run, so the
// machine's drift hits both alike; the two throughputs are reported side by
// side as counters, with their ratio.
// PROCPOOL_STATS_BENCH_ROUNDS (default 4) sets the number of round pairs,
// each side running 0.5 s per round.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <procpool/procpool.hpp>
#include <thread>
#include <vector>

#include "task_pool_workloads.hpp"

namespace {

namespace pb = procpool_bench;
using Clock = std::chrono::steady_clock;

constexpr int workers = 2;
constexpr auto round_time = std::chrono::milliseconds(500);
constexpr auto stats_period = std::chrono::milliseconds(100);

int rounds() {
  const char* text = std::getenv("PROCPOOL_STATS_BENCH_ROUNDS");
  const int n = text != nullptr ? std::atoi(text) : 0;
  return n > 0 ? n : 4;
}

// Runs no-op batches on `pool` for about round_time; adds the tasks and seconds.
void run_round(procpool::Pool& pool, std::vector<procpool::AsyncResult<int>>& results, std::int64_t& tasks,
               double& seconds) {
  const auto start = Clock::now();
  std::int64_t sum = 0;
  std::int64_t done = 0;
  while (Clock::now() - start < round_time) {
    sum += pb::run_noops(pool, pb::noop_batch, results);
    done += pb::noop_batch;
  }
  benchmark::DoNotOptimize(sum);
  tasks += done;
  seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

// rounds() pairs of rounds, in the order AB BA AB ...
template <class A, class B>
void alternate(const A& a, const B& b) {
  for (int r = 0; r < rounds(); ++r) {
    if (r % 2 == 0) {
      a();
      b();
    } else {
      b();
      a();
    }
  }
}

// Calls pool.stats() every stats_period while it lives; counts the calls.
class StatsPoller {
 public:
  explicit StatsPoller(procpool::Pool& pool)
      : thread_([this, &pool] {
          std::unique_lock lock(mutex_);
          while (!stop_) {
            lock.unlock();
            const procpool::PoolStats s = pool.stats();
            benchmark::DoNotOptimize(s.completed);
            calls_.fetch_add(1, std::memory_order_relaxed);
            lock.lock();
            wake_.wait_for(lock, stats_period, [this] { return stop_; });
          }
        }) {}
  ~StatsPoller() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  static inline std::atomic<std::int64_t> calls_{0};

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

void report(benchmark::State& state, const char* off_name, std::int64_t off_tasks, double off_seconds,
            const char* on_name, std::int64_t on_tasks, double on_seconds) {
  const double off = static_cast<double>(off_tasks) / off_seconds;
  const double on = static_cast<double>(on_tasks) / on_seconds;
  state.counters[off_name] = off;
  state.counters[on_name] = on;
  state.counters["on_vs_off"] = on / off;
  state.SetItemsProcessed(off_tasks + on_tasks);
}

}  // namespace

// No-op throughput without (tasks_per_s_plain) and with (tasks_per_s_stats) a thread calling stats() every 100 ms.
static void BM_PoolStatsOverhead(benchmark::State& state) {
  procpool::Pool pool(workers);
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(pb::noop_batch);
  std::int64_t plain_tasks = 0, stats_tasks = 0;
  double plain_seconds = 0, stats_seconds = 0;
  const auto plain = [&] { run_round(pool, results, plain_tasks, plain_seconds); };
  const auto polled = [&] {
    const StatsPoller poller(pool);
    run_round(pool, results, stats_tasks, stats_seconds);
  };
  plain();
  polled();
  plain_tasks = stats_tasks = 0;
  plain_seconds = stats_seconds = 0;
  StatsPoller::calls_ = 0;
  for (auto _ : state) alternate(plain, polled);
  report(state, "tasks_per_s_plain", plain_tasks, plain_seconds, "tasks_per_s_stats", stats_tasks, stats_seconds);
  state.counters["stats_calls"] = static_cast<double>(StatsPoller::calls_.load());
}
BENCHMARK(BM_PoolStatsOverhead)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// No-op throughput of a pool without (tasks_per_s_untraced) and with (tasks_per_s_traced) a trace_path:
// /dev/null, so every event is formatted and written but a run of millions of tasks fills no disk.
static void BM_PoolTraceOverhead(benchmark::State& state) {
  procpool::PoolOptions untraced_options;
  untraced_options.processes = workers;
  procpool::PoolOptions traced_options = untraced_options;
  traced_options.trace_path = "/dev/null";
  procpool::Pool untraced(untraced_options);
  procpool::Pool traced(traced_options);
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(pb::noop_batch);
  std::int64_t off_tasks = 0, on_tasks = 0;
  double off_seconds = 0, on_seconds = 0;
  const auto off = [&] { run_round(untraced, results, off_tasks, off_seconds); };
  const auto on = [&] { run_round(traced, results, on_tasks, on_seconds); };
  off();
  on();
  off_tasks = on_tasks = 0;
  off_seconds = on_seconds = 0;
  for (auto _ : state) alternate(off, on);
  report(state, "tasks_per_s_untraced", off_tasks, off_seconds, "tasks_per_s_traced", on_tasks, on_seconds);
}
BENCHMARK(BM_PoolTraceOverhead)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

BENCHMARK_MAIN();
