// The parent side of a pool: dispatch into task rings, a result thread that
// drains result rings, and a monitor thread that listens to the zygote.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <thread>
#include <unordered_set>
#include <vector>

#include "engine/executor/attachments.hpp"
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

class PoolCore final : public Executor {
 public:
  explicit PoolCore(PoolOptions options);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  // Terminates whatever is still running.
  ~PoolCore();

  void submit(const char* call, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode) override;
  // Throws ValueError naming `call` unless the pool is running.
  void check_running(const char* call) const override;
  void check_shares(const char* call) const override { check_running(call); }
  int processes() const noexcept override { return processes_; }
  void close() override;
  void join() override;
  void terminate() override;
  // Called by ~Pool: close (if running) and join, never throwing.
  void finish() noexcept override;

  int size() const override;
  std::vector<pid_t> worker_pids() const;

  // ResultSource: threads waiting in get() drain result rings themselves.
  bool pump() noexcept override;
  void begin_pumping() noexcept override;
  void end_pumping() noexcept override;

 private:
  enum class Phase { running, closing, terminated };

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
    SharedBlocks blocks;        // shared data its handles name, kept until its result is in
  };

  struct Slot {
    enum class State { starting, running, exited };
    State state = State::starting;
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
    // Shared blocks sent to this worker, and released ones it must be told
    // to forget (when its ring has room). Under mutex_; reset per worker.
    std::unordered_set<std::uint64_t> sent_blocks;
    std::vector<std::uint64_t> forgets;
  };

  struct Event {
    ZygoteReport report;
    UniqueFd socket;
  };

  // Submission and dispatch (under mutex_).
  void check_running_locked(const char* call) const;
  void set_phase_locked(Phase phase);
  bool dispatch_locked(Task& task, const char* bytes, std::size_t size);
  void dispatch_backlog_locked();
  void send_stops_locked();
  // Moves tasks a busy worker has not started to a worker with none.
  void steal_for_idle_workers_locked();
  static std::vector<FrameView> unconsumed_frames(const Ring& ring);
  static void take_payload(Task& task, const FrameView& frame);
  bool all_exited_locked() const;
  // Shared blocks (pool_blocks.cpp): sends the ones `task` carries that
  // worker `index` lacks; tells workers to forget released ones.
  bool send_blocks_locked(int index, const Task& task);
  void forget_released_blocks_locked();

  // Result thread (and pumping waiters, under drain_mutex_).
  void result_loop();
  bool drain_all(bool changed);
  bool drain_results(int slot);
  bool any_results() const noexcept;
  void complete(Task& task, const FrameView& frame, int slot);
  bool handle_events();
  void on_spawned(int slot, pid_t pid, UniqueFd socket);
  void on_exited(int slot, pid_t pid, int status);
  void on_zygote_lost();

  // Monitor thread.
  void monitor_loop();
  int monitor_poll_timeout_ms() const;
  void kill_timed_out_tasks();
  void task_count_changed(std::ptrdiff_t delta);

  void stop_threads() noexcept;
  void signal_result_thread() noexcept;

  PoolOptions options_;
  int processes_;
  SharedRegion region_;
  std::unique_ptr<Zygote> zygote_;

  mutable std::mutex mutex_;
  Phase phase_ = Phase::running;
  std::atomic<bool> accepting_{true};  // phase_ == running, for a look without the lock
  std::vector<Slot> slots_;
  std::deque<Task> backlog_;
  std::shared_ptr<ReleasedBlocks> released_blocks_;  // blocks whose last handle died, to forget
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

  UniqueFd monitor_wake_;  // eventfd: a task count left 0, or the monitor must stop
  std::atomic<bool> monitor_stop_{false};
  std::thread result_thread_;
  std::thread monitor_thread_;
  std::mutex join_mutex_;
  bool joined_ = false;
};

}  // namespace procpool::detail
