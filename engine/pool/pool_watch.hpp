// The pool's watch: a thread that listens to the zygote (a worker started,
// ended, or could not be forked) and hands its reports to the result
// thread; that kills the worker of a task past its time-out; and that asks
// the zygote again, when due, for a worker it could not fork.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/process/zygote.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/pool.hpp"

namespace procpool::detail {

class SlotTable;

class PoolWatch {
 public:
  // What the watch saw: a report from the zygote, or the end of its stream.
  struct Event {
    enum class Kind { report, zygote_ended };
    Kind kind = Kind::report;
    ZygoteReport report{};
    UniqueFd socket;
  };

  PoolWatch(const PoolOptions& options, SharedRegion& region, int processes);
  PoolWatch(const PoolWatch&) = delete;
  PoolWatch& operator=(const PoolWatch&) = delete;

  // Starts the thread. `table` is read under `lifecycle`'s mutex;
  // `wake_results` wakes the result thread, which takes the events.
  void start(Zygote& zygote, SlotTable& table, Lifecycle& lifecycle, std::function<void()> wake_results);
  void stop() noexcept;

  void push(Event event);
  std::vector<Event> take_events();

  // Counts the tasks in workers' rings, which the time-out watch needs.
  // Without a task_timeout it costs the submitter and the drainer nothing:
  // no cache line passed back and forth per task.
  void task_count_changed(std::ptrdiff_t delta) noexcept {
    if (counting_) count_changed(delta);
  }
  // The task the watch killed slot `slot`'s worker for (0: none); cleared.
  std::uint64_t take_timed_out(int slot) noexcept;
  // Under the pool mutex: a spawn is to be asked for again at `when_ns`.
  void retry_at_locked(std::int64_t when_ns) noexcept;

  static std::int64_t now_ns() noexcept;

 private:
  void loop();
  int poll_timeout_ms() const;
  void kill_timed_out_tasks();
  void retry_spawns();
  void count_changed(std::ptrdiff_t delta) noexcept;
  void wake() const noexcept;

  const PoolOptions& options_;
  SharedRegion& region_;
  const bool counting_;
  Zygote* zygote_ = nullptr;
  SlotTable* table_ = nullptr;
  Lifecycle* lifecycle_ = nullptr;
  std::function<void()> wake_results_;

  // Tasks in workers' rings, all slots together (only with a task_timeout).
  // The clock is watched only while this is non-zero: an idle pool never wakes.
  std::atomic<std::size_t> inflight_total_{0};
  // Per slot: the task whose worker was killed for its time-out (0: none).
  std::unique_ptr<std::atomic<std::uint64_t>[]> timed_out_;
  // The earliest retry of a spawn (0: none); written under the pool mutex.
  std::atomic<std::int64_t> next_retry_ns_{0};

  std::mutex events_mutex_;  // guards events_ only; taken under no other lock but the drain lock
  std::vector<Event> events_;

  UniqueFd wake_;  // eventfd: the task count left 0, a retry was scheduled, or stop
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace procpool::detail
