// PoolOptions::max_pending: a producer loop of trivial apply_async calls
// that keeps no result, with and without the limit. The figure is the
// parent's peak RSS during the run (VmHWM, reset first): bounded by the limit
// with it, growing with the task count without it. Not part of compare.py.
//
// By default 1,000,000 tasks per run (about 3 s each on two cores). The issue's
// 10,000,000-task run is opt-in: PROCPOOL_BACKPRESSURE_TASKS=10000000.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <procpool/procpool.hpp>
#include <string>

namespace {

int noop(int x) { return x; }

std::int64_t task_count() {
  const char* text = std::getenv("PROCPOOL_BACKPRESSURE_TASKS");
  return text != nullptr ? std::atoll(text) : 1'000'000;
}

// A field of /proc/self/status in kB ("VmHWM:", "VmRSS:").
double status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::atof(line.c_str() + field.size());
  }
  return 0;
}

// Resets VmHWM to the current RSS (Linux 4.0+), so each run reports its own peak.
void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

}  // namespace

// range(0): max_pending (0: unlimited). Submits task_count() no-ops, keeping
// no AsyncResult, then close() and join() wait for them all.
static void BM_PoolBackpressure(benchmark::State& state) {
  const std::int64_t tasks = task_count();
  double peak_mib = 0;
  double start_mib = 0;
  for (auto _ : state) {
    procpool::PoolOptions options;
    options.processes = 2;
    options.max_pending = static_cast<std::size_t>(state.range(0));
    procpool::Pool pool(options);
    reset_peak_rss();
    start_mib = status_kib("VmRSS:") / 1024;
    for (std::int64_t i = 0; i < tasks; ++i) (void)pool.apply_async(noop, static_cast<int>(i));
    pool.close();
    pool.join();
    peak_mib = status_kib("VmHWM:") / 1024;
  }
  state.SetItemsProcessed(state.iterations() * tasks);
  state.counters["tasks"] = static_cast<double>(tasks);
  state.counters["peak_rss_MiB"] = peak_mib;
  state.counters["peak_growth_MiB"] = peak_mib - start_mib;
}
BENCHMARK(BM_PoolBackpressure)->ArgName("max_pending")->Arg(10000)->Arg(0)->Iterations(1)
    ->Unit(benchmark::kSecond)->UseRealTime();

BENCHMARK_MAIN();
