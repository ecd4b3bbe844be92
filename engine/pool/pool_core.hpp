// The parent side of a pool: dispatch into task rings, a result thread that
// drains result rings, and a monitor thread that listens to the zygote.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/pool/spsc_queue.hpp"
#include "engine/sys/unique_fd.hpp"
#include "engine/process/zygote.hpp"
#include "procpool/detail/executor.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/map_state.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/pool.hpp"

namespace procpool::detail {

class PoolCore final : public Executor, public ResultSource, private LifecycleSteps {
 public:
  // Starts the workers; waiters on the pool's results may pump it.
  static std::shared_ptr<PoolCore> create(PoolOptions options);
  explicit PoolCore(PoolOptions options);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  // Terminates whatever is still running (nothing, after finish()).
  ~PoolCore();

  const char* display_name() const noexcept override { return lifecycle_.display_name(); }
  void submit(const char* call, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode) override;
  void check_running(const char* call) const override { lifecycle_.check_running(call); }
  int processes() const noexcept override { return processes_; }
  void close() override { lifecycle_.close(); }
  void join() override { lifecycle_.join(); }
  void terminate() override { lifecycle_.terminate(); }
  void finish() noexcept override { lifecycle_.finish(); }

  int size() const override;
  std::vector<pid_t> worker_pids() const;

  // ResultSource: threads waiting in get() drain result rings themselves.
  bool pump() noexcept override;
  void begin_pumping() noexcept override;
  void end_pumping() noexcept override;

 private:
  using Phase = Lifecycle::Phase;

  // Tasks queued in one worker's ring at most; more wait in the parent's
  // backlog. Enough that a burst of small tasks goes straight to the rings;
  // a worker that runs dry takes half of a busy one's unstarted tasks.
  static constexpr std::size_t max_inflight_per_worker = 1024;

  // A task the parent still answers for: queued here, or in a worker's ring.
  struct Task {
    std::uint64_t id = 0;
    std::shared_ptr<ResultStateBase> state;
    std::vector<char> bytes;    // the payload, while it waits in the backlog
    UniqueFd memfd;             // a large payload, kept until its result is in
    std::uint64_t memfd_size = 0;
  };

  struct Slot {
    // retrying: the zygote could not fork its worker; it asks again at retry_at_ns.
    enum class State { starting, running, retrying, exited };
    State state = State::starting;
    std::chrono::milliseconds spawn_backoff{0};  // 0 until a spawn fails; reset by a spawn
    std::int64_t retry_at_ns = 0;                // CLOCK_MONOTONIC
    pid_t pid = 0;
    UniqueFd socket;
    Ring tasks;
    Ring results;
    bool stop_sent = false;
    // Results taken from this worker (for maxtasksperchild); counted before
    // the task leaves `inflight`, so done + inflight.size() never undercounts.
    std::atomic<std::size_t> done{0};
    // Dispatched to this worker, in ring order. Pushed under mutex_, popped
    // under drain_mutex_; anything else (recovery, stealing, terminate) holds both.
    SpscQueue<Task> inflight{max_inflight_per_worker};
  };

  // What the monitor saw: a report from the zygote, or the end of its stream.
  struct Event {
    enum class Kind { report, zygote_ended };
    Kind kind = Kind::report;
    ZygoteReport report{};
    UniqueFd socket;
  };

  // LifecycleSteps.
  void before_closing() noexcept override { flush_inputs(); }
  void closing() noexcept override { signal_result_thread(); }
  std::unique_lock<std::mutex> lock_before_terminating() override { return std::unique_lock(drain_mutex_); }
  void take_unfinished_locked() override;
  void stop_now(const std::exception_ptr& error) noexcept override;
  void wait_stopped() noexcept override;

  // Submission and dispatch (under mutex_).
  bool dispatch_locked(Task& task, const char* bytes, std::size_t size);
  void dispatch_backlog_locked();
  void send_stops_locked();
  // Moves tasks a busy worker has not started to a worker with none.
  void steal_for_idle_workers_locked();
  static std::vector<FrameView> unconsumed_frames(const Ring& ring);
  static void take_payload(Task& task, const FrameView& frame);
  bool all_exited_locked() const;

  // Result thread (and pumping waiters, under drain_mutex_).
  void result_loop();
  bool drain_all(bool changed);
  bool drain_results(int slot);
  bool any_results() const noexcept;
  void complete(Task& task, const FrameView& frame, int slot);
  bool handle_events();
  void on_spawned(int slot, pid_t pid, UniqueFd socket);
  void on_exited(int slot, pid_t pid, int status);
  void on_spawn_failed(int slot);
  bool worker_needed_locked() const;
  void on_zygote_lost();

  // Monitor thread.
  void monitor_loop();
  int monitor_poll_timeout_ms() const;
  void kill_timed_out_tasks();
  void retry_spawns();
  void task_count_changed(std::ptrdiff_t delta);

  void stop_threads() noexcept;
  void signal_result_thread() noexcept;

  PoolOptions options_;
  int processes_;
  SharedRegion region_;
  std::unique_ptr<Zygote> zygote_;

  Lifecycle lifecycle_{"procpool::Pool", *this};
  std::mutex& mutex_ = lifecycle_.mutex();
  // Taken by terminate() under mutex_, failed by the same call after it.
  std::vector<Task> terminated_tasks_;
  std::vector<Slot> slots_;
  std::deque<Task> backlog_;
  std::uint64_t next_id_ = 1;
  // Tasks in workers' rings, all slots together, counted only when there is
  // a task_timeout. The monitor watches the clock only while this is
  // non-zero, so an idle pool never wakes.
  std::atomic<std::size_t> inflight_total_{0};
  // Per slot: the task the monitor killed its worker for (0: none).
  std::unique_ptr<std::atomic<std::uint64_t>[]> timed_out_;

  // Held by whichever thread drains result rings: the result thread, or a
  // waiter pumping. Never held while user callbacks run.
  std::mutex drain_mutex_;
  std::atomic<bool> pumping_open_{true};
  std::mutex callbacks_mutex_;
  std::vector<std::function<void()>> pumped_callbacks_;  // collected by pumpers, run by the result thread

  std::mutex events_mutex_;
  std::vector<Event> events_;
  std::atomic<std::uint32_t> signals_{0};  // bumped by other threads to wake the result thread

  // The earliest retry_at_ns of a retrying slot (0: none); written under mutex_.
  std::atomic<std::int64_t> next_retry_ns_{0};
  UniqueFd monitor_wake_;  // eventfd: a task count left 0, or the monitor must stop
  std::atomic<bool> monitor_stop_{false};
  std::thread result_thread_;
  std::thread monitor_thread_;
};

}  // namespace procpool::detail
