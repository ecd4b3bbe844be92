// The pool's watch: a thread that listens to the zygote (a worker started,
// ended, or could not be forked) and hands its reports to the result
// thread; that kills the worker of a task past its time-out, or of a
// cancelled task past its grace, and asks a task past its soft time-out to
// stop; and that asks the zygote again, when due, for a worker it could not fork.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/process/zygote.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/pool.hpp"
#include "procpool/task_options.hpp"

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
  // Task `id`, with a time-out or soft time-out of its own, is in a worker's
  // ring (again): watched while it runs, forgotten once `state` is complete.
  // Only tasks with such options come here. Any thread.
  void watch_task(std::uint64_t id, const TaskOptions& options, const std::weak_ptr<ResultStateBase>& state);
  // Task `id` was cancelled while it ran: if it still runs cancel_grace from
  // now, its worker is killed. Any thread.
  void watch_cancelled(std::uint64_t id);
  // The task the watch killed slot `slot`'s worker for (0: none); cleared.
  std::uint64_t take_timed_out(int slot) noexcept;
  // Under the pool mutex: a spawn is to be asked for again at `when_ns`.
  void retry_at_locked(std::int64_t when_ns) noexcept;

  static std::int64_t now_ns() noexcept;

 private:
  void loop();
  int poll_timeout_ms() const;
  void check_running_tasks();
  void forget_watched_locked(std::int64_t now) noexcept;
  // Adds a watched limit (`first`: the first watched task); wakes the thread if it must look sooner.
  void note_limit(std::int64_t limit_ns, bool first) noexcept;
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
  // Tasks with a deadline of their own, by id (TaskOptions, or cancelled
  // while running). Only for those: a pool without them pays nothing.
  struct Watched {
    std::int64_t timeout_ns = 0;       // hard; 0: the pool's task_timeout
    std::int64_t soft_timeout_ns = 0;  // 0: none
    std::int64_t cancel_at_ns = 0;     // cancelled while running: kill at this time (0: not cancelled)
    bool soft_sent = false;            // its stop request went out for this run
    std::weak_ptr<ResultStateBase> state;
  };
  std::mutex watched_mutex_;  // guards watched_; a leaf (see pool_core.hpp)
  std::unordered_map<std::uint64_t, Watched> watched_;
  std::atomic<std::size_t> watched_count_{0};
  // The shortest of the watched tasks' limits: the watch looks four times per it.
  std::atomic<std::int64_t> watched_min_ns_{0};
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
