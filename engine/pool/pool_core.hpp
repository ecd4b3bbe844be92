// The parent side of the local pool, composed of the parts that own its
// state: the slot table (workers, dispatch, backlog), the result drainer
// (result thread, pumping waiters, callbacks) and the watch (zygote reports,
// time-outs, spawn retries), under the lifecycle both pools share.
//
// Lock order, outermost first; a thread holding one takes only those below:
//   1. drainer_.drain_mutex()  the pop side of every slot's inflight queue and
//                              the result rings (result thread, or a pumper)
//   2. lifecycle_.mutex()      the phase and the whole slot table: slots,
//                              backlog, the push side of inflight
//   3. ResultDrainer::callbacks_mutex_, PoolWatch::events_mutex_ and
//      watched_mutex_, the task arena's ArenaAllocator mutex, ReleasedBlocks'
//      mutex, StatsRecorder::samples_mutex_, TraceWriter::mutex_: leaves
// AsyncResult::cancel() fails the result first, under no lock, then takes 1 and 2.
// The lifecycle's join mutex is taken with none of these held. No lock is
// held while user callbacks run.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/types.h>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/executor/pending_limit.hpp"
#include "engine/ipc/arena_allocator.hpp"
#include "engine/ipc/payload_arenas.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/pool/pool_watch.hpp"
#include "engine/pool/result_drainer.hpp"
#include "engine/pool/slot_table.hpp"
#include "engine/pool/start_failures.hpp"
#include "engine/pool/stats_recorder.hpp"
#include "engine/pool/trace_writer.hpp"
#include "engine/process/zygote.hpp"
#include "engine/sys/unique_fd.hpp"
#include "engine/sys/zygote_exclusions.hpp"
#include "procpool/detail/executor.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/pool.hpp"

namespace procpool::detail {

class PoolCore final : public Executor, private LifecycleSteps {
 public:
  // Starts the workers; waiters on the pool's results may pump its drainer.
  static std::shared_ptr<PoolCore> create(PoolOptions options);
  explicit PoolCore(PoolOptions options);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  // Terminates whatever is still running (nothing, after finish()).
  ~PoolCore();

  const char* display_name() const noexcept override { return lifecycle_.display_name(); }
  void submit(const char* call, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode,
              const TaskOptions& options) override {
    queue(call, std::move(state), encode, options, false);
  }
  void check_running(const char* call) const override { lifecycle_.check_running(call); }
  void defer(const char* call) override { lifecycle_.defer(call); }
  void submit_deferred(const char* call, std::shared_ptr<ResultStateBase> state,
                       FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) override {
    queue(call, std::move(state), encode, options, true);
  }
  void undefer() noexcept override { lifecycle_.undefer(); }
  void check_shares(const char* call) const override { check_running(call); }
  int processes() const noexcept override { return processes_; }
  void close() override { lifecycle_.close(); }
  void join() override { lifecycle_.join(); }
  void terminate() override { lifecycle_.terminate(); }
  void finish() noexcept override { lifecycle_.finish(); }

  int size() const override;
  std::vector<pid_t> worker_pids() const;
  PoolStats stats() const;

 private:
  // LifecycleSteps.
  void before_closing() noexcept override { flush_inputs(); }
  void closing() noexcept override;
  std::unique_lock<std::mutex> lock_before_terminating() override { return std::unique_lock(drainer_.drain_mutex()); }
  void take_unfinished_locked() override { table_.take_all_locked(terminated_tasks_, false); }
  void stop_now(const std::exception_ptr& error) noexcept override;
  void wait_stopped() noexcept override;
  void deferred_done() noexcept override { drainer_.signal(); }
  // submit(), or submit_deferred() if `deferred`.
  void queue(const char* call, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode,
             const TaskOptions& options, bool deferred);
  // Submitters blocked by max_pending stop waiting (and throw, as the pool is closed).
  void stop_limiting() noexcept {
    if (pending_) pending_->close();
  }

  // Asks for every worker and waits until one has started (the others are
  // reported to the watch), retrying those the zygote cannot fork; throws
  // BrokenPool if none can be for fork_failure_limit.
  void start_workers();
  // A slot's first spawn was answered (started, or failed and left to retry).
  void first_start_answered_locked(int slot) noexcept;
  // While the pool runs, until every slot's first spawn is answered.
  void wait_first_starts(std::unique_lock<std::mutex>& lock) const;
  // The watch's reports, on the result thread under the drain lock.
  bool handle_events();
  void on_spawned(int slot, pid_t pid, UniqueFd socket);
  void on_exited(int slot, pid_t pid, int status);
  void on_spawn_failed(int slot, int error);
  void on_zygote_lost();

  PoolOptions options_;
  int processes_;
  SharedRegion region_;
  PayloadArenas arenas_;
  std::shared_ptr<ArenaAllocator> task_arena_;  // the parent's blocks in arenas_.tasks()
  // PoolOptions::max_pending (null if 0): the tasks' result states hold it too.
  std::shared_ptr<PendingLimit> pending_;
  Lifecycle lifecycle_{"procpool::Pool", *this};
  PoolWatch watch_;
  SlotTable table_;  // under lifecycle_.mutex(), but for inflight's pop side
  std::unique_ptr<TraceWriter> trace_;  // null unless PoolOptions::trace_path is set
  StatsRecorder stats_;
  ResultDrainer drainer_;
  std::unique_ptr<Zygote> zygote_;
  StartFailures start_failures_;  // under lifecycle_.mutex()
  // Slots whose first spawn the zygote has not answered yet: worker_pids()
  // waits for them (started_changed_), so it lists every worker after the
  // constructor although the constructor waits for the first one only.
  std::vector<char> first_start_pending_;  // under lifecycle_.mutex()
  int first_starts_pending_ = 0;           // under lifecycle_.mutex()
  mutable std::condition_variable started_changed_;
  // Taken by terminate() under lifecycle_.mutex(), failed by the same call after it.
  std::vector<PoolTask> terminated_tasks_;
  std::optional<ZygoteExclusion> region_exclusion_;  // before region_ and arenas_ go
  std::optional<ZygoteExclusion> arena_exclusion_;
};

}  // namespace procpool::detail
