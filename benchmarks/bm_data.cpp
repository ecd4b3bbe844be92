// bm_data.cpp - procpool's large-data figures: a Shared<T> argument read by
// many tasks, and a SharedArray<float> written in place by a map. Their
// baselines are in the same compare.py run: BM_PoolRoundTrip (bm_pool.cpp),
// BM_ThreadPoolSharedArg and BM_ThreadPoolVectorMap (bm_thread_pool.cpp).
// Built only once include/procpool/shared_array.hpp exists (meson.build).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <procpool/procpool.hpp>
#include <span>
#include <vector>

#include "bench_support.hpp"
#include "task_pool_workloads.hpp"

namespace {

namespace pb = procpool_bench;

constexpr int workers = 2;
constexpr int shared_tasks = 10'000;                         // tasks that read one Shared<T>
constexpr std::size_t shared_bytes = std::size_t{256} << 20;  // the Shared<T> payload
constexpr std::size_t array_floats = std::size_t{64} << 20;   // 256 MiB of floats
constexpr std::size_t array_slices = 16;                      // 16 MiB per task, 8 per worker

using Payload = std::vector<char>;

// Reads one byte of the shared payload, so the task cannot skip decoding it.
int read_shared(const procpool::Shared<Payload>& bytes, int i) {
  return (*bytes)[static_cast<std::size_t>(i) % bytes->size()] + i;
}

// What `shared_tasks` read_shared tasks return in total, computed here.
std::int64_t expected_sum(const Payload& bytes) {
  std::int64_t sum = 0;
  for (int i = 0; i < shared_tasks; ++i) sum += bytes[static_cast<std::size_t>(i) % bytes.size()] + i;
  return sum;
}

std::int64_t run_shared_tasks(procpool::Pool& pool, const procpool::Shared<Payload>& shared,
                              std::vector<procpool::AsyncResult<int>>& results) {
  results.clear();
  for (int i = 0; i < shared_tasks; ++i) results.push_back(pool.apply_async(read_shared, shared, i));
  std::int64_t sum = 0;
  for (auto& r : results) sum += r.get();
  return sum;
}

// The map slice task: a read-modify-write of every element, in place in the
// shared memory the parent sees (BM_ThreadPoolVectorMap's scale_in_place).
std::size_t scale_slice(procpool::SharedArray<float> slice) {
  for (float& x : slice.span()) x = x * 1.0001f + 1.0f;
  return slice.size();
}

}  // namespace

// Shared argument: pool.share() a 256 MiB std::vector<char> once, then 10,000 apply_async(read_shared, shared, i), collected (the first ones decode it, once per worker).
// us_per_task = real time / 10,000 (target: <= 2x BM_PoolRoundTrip); pss_kib_* = parent + zygote + workers before share() and after the tasks.
static void BM_PoolSharedArg(benchmark::State& state) {
  procpool::Pool pool(workers);
  benchmark::DoNotOptimize(pb::run_noops(pool, 2 * pb::noop_batch));  // workers up and warm
  const Payload payload = pb::pattern(shared_bytes);
  const std::int64_t expected = expected_sum(payload);
  std::vector<procpool::AsyncResult<int>> results;
  results.reserve(shared_tasks);

  const double pss_before = pb::tree_pss_kib();
  const auto t0 = std::chrono::steady_clock::now();
  const procpool::Shared<Payload> shared = pool.share(payload);
  const std::chrono::duration<double, std::milli> share_time = std::chrono::steady_clock::now() - t0;

  const auto t1 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (run_shared_tasks(pool, shared, results) != expected) {
      state.SkipWithError("a task read different bytes from the Shared payload");
      break;
    }
  }
  if (state.error_occurred()) return;
  const std::chrono::duration<double, std::micro> first = std::chrono::steady_clock::now() - t1;
  const double pss_after = pb::tree_pss_kib();

  // Once every worker has decoded the payload: the steady per-task cost.
  const auto t2 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(run_shared_tasks(pool, shared, results));
  const std::chrono::duration<double, std::micro> warm = std::chrono::steady_clock::now() - t2;

  const auto tasks = static_cast<double>(state.iterations() * shared_tasks);
  const double growth_kib = pss_after - pss_before;
  state.SetItemsProcessed(state.iterations() * shared_tasks);
  state.counters["us_per_task"] = first.count() / tasks;
  state.counters["us_per_task_warm"] = warm.count() / static_cast<double>(shared_tasks);
  state.counters["share_ms"] = share_time.count();
  state.counters["pss_kib_before"] = pss_before;
  state.counters["pss_kib_after"] = pss_after;
  state.counters["pss_growth_kib"] = growth_kib;
  state.counters["growth_copies_per_worker"] = growth_kib * 1024 / static_cast<double>(shared_bytes) / workers;
  state.counters["payload_mib"] = static_cast<double>(shared_bytes >> 20);
}
// One iteration: exactly the first 10,000 tasks that see this Shared value.
BENCHMARK(BM_PoolSharedArg)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// SharedArray map: x = x * 1.0001f + 1 in place over a 256 MiB SharedArray<float>, as 16 subspan slice tasks on 2 workers, collected; bytes_per_second counts the 256 MiB once per pass (vs BM_ThreadPoolVectorMap).
static void BM_PoolSharedArrayMap(benchmark::State& state) {
  procpool::Pool pool(workers);
  procpool::SharedArray<float> array(array_floats);
  const std::size_t slice = array.size() / array_slices;
  std::vector<procpool::AsyncResult<std::size_t>> results;
  auto pass = [&] {
    results.clear();
    for (std::size_t first = 0; first < array.size(); first += slice)
      results.push_back(pool.apply_async(scale_slice, array.subspan(first, slice)));
    std::size_t done = 0;
    for (auto& r : results) done += r.get();
    return done;
  };
  pass();  // first touch of every page, in the workers, outside the timed loop
  for (auto _ : state) {
    if (pass() != array.size()) {
      state.SkipWithError("map covered the wrong number of elements");
      break;
    }
  }
  if (state.error_occurred()) return;
  // Every element went through the same passes: the parent must see them equal.
  const std::span<float> all = array.span();
  if (all.front() != all[all.size() / 2] || all.front() != all.back() || all.front() == 0.0f) {
    state.SkipWithError("the parent does not see the tasks' writes");
    return;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(array_floats * sizeof(float)));
}
BENCHMARK(BM_PoolSharedArrayMap)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
