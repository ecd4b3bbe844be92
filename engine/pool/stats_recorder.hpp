// The counters and task timings behind Pool::stats(). Each counter is
// written where the pool already holds the lock for that event (the pool
// mutex for submissions and worker starts, the drain lock for results), so
// counting adds no lock and no contended cache line to the hot path; the
// readers load them relaxed. Only the timed tasks' samples have a mutex of
// their own (a leaf), taken once per timed task and once per stats().
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <sys/types.h>
#include <vector>

#include "engine/executor/payload.hpp"
#include "engine/ipc/ring.hpp"
#include "engine/sys/constants.hpp"
#include "procpool/pool_stats.hpp"

namespace procpool::detail {

// A timed task whose timing frame came in: when it was submitted, started and ended.
struct TimedTask {
  std::uint64_t id = 0;
  std::int64_t submitted_ns = 0;
  std::int64_t started_ns = 0;
  std::int64_t ended_ns = 0;
};

class StatsRecorder {
 public:
  // `time_every_task`: a trace is written, which needs every task's times.
  StatsRecorder(int slots, bool time_every_task);
  StatsRecorder(const StatsRecorder&) = delete;
  StatsRecorder& operator=(const StatsRecorder&) = delete;

  // Under the pool mutex, for each task queued: counts it, and returns its
  // submission time (CLOCK_MONOTONIC) if it is to be timed, else 0.
  std::int64_t queued_locked() noexcept;
  // A task that failed before it could be queued (its arguments did not serialize). Any thread.
  void unqueued_failure() noexcept;

  // Under the drain lock: a result came from a worker.
  void result(ResultOutcome outcome) noexcept {
    if (outcome == ResultOutcome::value) {
      completed_.store(completed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else if (outcome == ResultOutcome::error) {
      failed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // A task failed in the parent (its worker died, terminate(), ...). Any thread.
  void failed() noexcept { failed_.fetch_add(1, std::memory_order_relaxed); }
  // A cancel() took effect. Any thread.
  void cancelled() noexcept { cancelled_.fetch_add(1, std::memory_order_relaxed); }
  // Under the pool mutex: an ended worker is being replaced.
  void worker_replaced_locked() noexcept {
    workers_replaced_.store(workers_replaced_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Under the drain lock: the result of timed task `id` came from `slot`;
  // its timing frame follows it in that worker's result ring.
  void expect_timing(int slot, std::uint64_t id, std::int64_t submitted_ns) noexcept {
    expected_[static_cast<std::size_t>(slot)] = {id, submitted_ns, 0, 0};
  }
  // Under the drain lock: a timing frame from `slot`. Records its sample and
  // returns the task's times in `task`; false if the frame is not the one
  // expected (the ring is then not to be trusted).
  bool timing(int slot, const FrameView& frame, TimedTask& task);

  // Any thread: fills every field but `queued`, `running` and `workers`.
  void fill(PoolStats& stats) const;
  // Reads a worker's resident memory and CPU time from /proc (0 if it is gone).
  static void read_process(WorkerStats& worker);

 private:
  struct Sample {
    std::int64_t wait_ns;
    std::int64_t run_ns;
  };

  // Submitters' and the drainer's fields on cache lines of their own: they
  // are written on every task, by different threads.
  // Under the pool mutex: the coarse clock's tick, and the tasks timed in it.
  alignas(cache_line) std::int64_t tick_ = 0;
  std::uint32_t timed_in_tick_ = 0;
  const bool time_every_task_;
  std::atomic<std::uint64_t> submitted_{0};  // written under the pool mutex only
  // Under the drain lock.
  alignas(cache_line) std::atomic<std::uint64_t> completed_{0};
  std::vector<TimedTask> expected_;  // per slot
  // Rare, from any thread.
  alignas(cache_line) std::atomic<std::uint64_t> unqueued_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> workers_replaced_{0};  // written under the pool mutex only

  mutable std::mutex samples_mutex_;  // guards the samples; a leaf (see pool_core.hpp)
  std::array<Sample, PoolStats::timing_window> samples_{};
  std::size_t sample_count_ = 0;  // all time; the latest ones are kept
};

}  // namespace procpool::detail
