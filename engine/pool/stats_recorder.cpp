#include "engine/pool/stats_recorder.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace procpool::detail {

namespace {

// Every this many tasks one is timed; and besides, the first few submitted
// in each tick of the coarse clock (4 ms on most kernels), so that a pool
// running few tasks times nearly all of them.
constexpr std::uint64_t timed_task_stride = 64;
constexpr std::uint32_t timed_per_tick = 16;

std::int64_t clock_ns(clockid_t clock) noexcept {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Nearest rank: the smallest sample that at least `percent` % of them do not exceed.
std::chrono::nanoseconds percentile(const std::vector<std::int64_t>& sorted, std::size_t percent) {
  const std::size_t rank = (sorted.size() * percent + 99) / 100;
  return std::chrono::nanoseconds(sorted[std::max<std::size_t>(rank, 1) - 1]);
}

LatencyPercentiles percentiles(std::vector<std::int64_t> values) {
  LatencyPercentiles p;
  p.samples = values.size();
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  p.p50 = percentile(values, 50);
  p.p99 = percentile(values, 99);
  return p;
}

}  // namespace

StatsRecorder::StatsRecorder(int slots, bool time_every_task)
    : time_every_task_(time_every_task), expected_(static_cast<std::size_t>(slots)) {}

std::int64_t StatsRecorder::queued_locked() noexcept {
  const std::uint64_t n = submitted_.load(std::memory_order_relaxed) + 1;
  submitted_.store(n, std::memory_order_relaxed);
  // Timing a task costs two precise clock reads (about 30 ns each here), a
  // coarse one a few ns: a busy pool times one task in 64, an idle one nearly all.
  if (!time_every_task_ && n % timed_task_stride != 0) {
    const std::int64_t tick = clock_ns(CLOCK_MONOTONIC_COARSE);
    if (tick != tick_) {
      tick_ = tick;
      timed_in_tick_ = 0;
    }
    if (timed_in_tick_ == timed_per_tick) return 0;
    ++timed_in_tick_;
  }
  return clock_ns(CLOCK_MONOTONIC);
}

void StatsRecorder::unqueued_failure() noexcept {
  unqueued_.fetch_add(1, std::memory_order_relaxed);
  failed_.fetch_add(1, std::memory_order_relaxed);
}

bool StatsRecorder::timing(int slot, const FrameView& frame, TimedTask& task) {
  TimedTask& expected = expected_[static_cast<std::size_t>(slot)];
  if (frame.header.size != sizeof(TaskTiming) || expected.id == 0 || frame.header.task_id != expected.id) return false;
  TaskTiming times{};
  std::memcpy(&times, frame.payload, sizeof times);
  task = expected;
  expected.id = 0;
  // The worker's clock is ours (CLOCK_MONOTONIC), but its bytes are not to be
  // trusted: a wrong value may skew the figures, never make them negative.
  task.started_ns = std::max(times.started_ns, task.submitted_ns);
  task.ended_ns = std::max(times.ended_ns, task.started_ns);
  std::lock_guard lock(samples_mutex_);
  samples_[sample_count_ % samples_.size()] = {task.started_ns - task.submitted_ns, task.ended_ns - task.started_ns};
  ++sample_count_;
  return true;
}

void StatsRecorder::fill(PoolStats& stats) const {
  std::vector<std::int64_t> waits;
  std::vector<std::int64_t> runs;
  {
    std::lock_guard lock(samples_mutex_);
    const std::size_t n = std::min(sample_count_, samples_.size());
    waits.reserve(n);
    runs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      waits.push_back(samples_[i].wait_ns);
      runs.push_back(samples_[i].run_ns);
    }
  }
  stats.queue_wait = percentiles(std::move(waits));
  stats.run_time = percentiles(std::move(runs));
  // Outcomes before submissions: a task counted as ended was always counted as submitted.
  stats.completed = completed_.load(std::memory_order_relaxed);
  stats.failed = failed_.load(std::memory_order_relaxed);
  stats.cancelled = cancelled_.load(std::memory_order_relaxed);
  stats.workers_replaced = workers_replaced_.load(std::memory_order_relaxed);
  stats.submitted = submitted_.load(std::memory_order_relaxed) + unqueued_.load(std::memory_order_relaxed);
}

void StatsRecorder::read_process(WorkerStats& worker) {
  const std::string dir = "/proc/" + std::to_string(worker.pid) + "/";
  {
    std::ifstream statm(dir + "statm");
    std::uint64_t size_pages = 0;
    std::uint64_t resident_pages = 0;
    if (statm >> size_pages >> resident_pages) {
      worker.rss_bytes = resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
  }
  std::ifstream stat(dir + "stat");
  std::string line;
  if (!std::getline(stat, line)) return;
  // The name, in parentheses, may hold spaces: the fields are counted after its ')'.
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return;
  std::istringstream fields(line.substr(close_paren + 1));
  std::string skip;
  // Fields 3 to 13 (state .. cmajflt), then utime and stime, in clock ticks.
  for (int i = 3; i <= 13 && (fields >> skip); ++i) {
  }
  std::uint64_t user_ticks = 0;
  std::uint64_t system_ticks = 0;
  if (fields >> user_ticks >> system_ticks) {
    worker.cpu_seconds = static_cast<double>(user_ticks + system_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
}

}  // namespace procpool::detail
