// The parent's record of its workers and of the tasks it answers for: one
// slot per worker (its rings, the tasks dispatched to it), the backlog, and
// the moves between them: dispatch, stealing for an idle worker, re-queueing
// after a worker's death, spawn retries.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <sys/types.h>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/executor/attachments.hpp"
#include "engine/executor/lifecycle.hpp"
#include "engine/ipc/arena_block.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/pool/backlog.hpp"
#include "engine/pool/spsc_queue.hpp"
#include "engine/pool/task_bytes.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/pool.hpp"
#include "procpool/task_options.hpp"

namespace procpool::detail {

class PoolWatch;

// What few tasks have, kept out of line so that a PoolTask stays at 128
// bytes (four to a std::deque block of the backlog; a batch of a million
// tasks pays for fresh memory more than for anything else).
struct TaskAttachments {
  ArenaBlock block;              // a large payload in the task arena, kept until its result is in
  UniqueFd memfd;                // or one too large for the arena, in a memfd of its own
  std::uint64_t large_size = 0;  // the bytes of either
  SharedBlocks blocks;           // shared data its handles name, kept until its result is in
};

// A task the parent still answers for: queued here, or in a worker's ring.
struct PoolTask {
  std::uint64_t id = 0;
  std::shared_ptr<ResultStateBase> state;
  TaskBytes bytes;                           // the payload, while it waits in the backlog
  std::unique_ptr<TaskAttachments> attached;  // null: no large payload, no shared blocks
  TaskOptions options;                       // its policy (task_control.cpp); all zero by default
  int attempt = 1;                           // the run this is, counting retries
  std::int64_t submitted_ns = 0;  // non-zero: its times are measured (PoolStats); queued then (CLOCK_MONOTONIC)

  TaskAttachments& attachments() {
    if (!attached) attached = std::make_unique<TaskAttachments>();
    return *attached;
  }
  bool large() const noexcept { return attached && (attached->block || attached->memfd); }
  // Whether the watch must know it while it runs (a deadline of its own).
  bool timed() const noexcept { return options.timeout.count() > 0 || options.soft_timeout.count() > 0; }
};

// How a worker ended, as the parent learned it.
struct WorkerDeath {
  pid_t pid = 0;
  int status = 0;         // its wait status
  std::string backtrace;  // its crash's stack, symbolized ("": none)
};

// The id a task's state carries (ResultStateBase::task_id): the task's id,
// plus, while the task is in a worker's ring, that slot + 1 in the top bits,
// so that cancel() looks into one ring only.
inline constexpr int task_ref_slot_shift = 48;
inline constexpr std::uint64_t task_ref_id_mask = (std::uint64_t{1} << task_ref_slot_shift) - 1;

// Tasks queued in one worker's ring at most; more wait in the parent's
// backlog. Enough that a burst of small tasks goes straight to the rings;
// a worker that runs dry takes half of a busy one's unstarted tasks.
inline constexpr std::size_t max_inflight_per_worker = 1024;
// Once a pool has seen a task with a non-zero priority, its rings hold at
// most this many tasks per worker, so that a task of higher priority
// submitted later waits for at most that many before it starts.
inline constexpr std::size_t prioritized_inflight_per_worker = 2;

struct WorkerSlot {
  // retrying: the zygote could not fork its worker; it is asked again at retry_at_ns.
  enum class State { starting, running, retrying, exited };
  State state = State::starting;
  std::chrono::milliseconds spawn_backoff{0};  // 0 until a spawn fails; reset by a spawn
  std::int64_t retry_at_ns = 0;                // CLOCK_MONOTONIC
  pid_t pid = 0;
  UniqueFd socket;
  Ring tasks;
  Ring results;  // the drainer's (under its drain lock)
  bool stop_sent = false;
  // Results taken from this worker (for maxtasksperchild); counted before
  // the task leaves `inflight`, so done + inflight.size() never undercounts.
  std::atomic<std::size_t> done{0};
  // Dispatched to this worker, in ring order. Pushed under the pool mutex,
  // popped under the drain lock; anything else (recovery, stealing,
  // terminate) holds both.
  SpscQueue<PoolTask> inflight{max_inflight_per_worker};
  // Shared blocks sent to this worker, and released ones it must be told
  // to forget (when its ring has room). Under the pool mutex; reset per worker.
  std::unordered_set<std::uint64_t> sent_blocks;
  std::vector<std::uint64_t> forgets;
};

// Not locked itself: every member ending in _locked needs the pool mutex
// (Lifecycle::mutex()), which also guards the phase, so a task is queued
// only while the pool runs.
class SlotTable {
 public:
  SlotTable(SharedRegion& region, const PoolOptions& options, PoolWatch& watch, int processes);

  int size() const noexcept { return static_cast<int>(slots_.size()); }
  WorkerSlot& slot(int index) noexcept { return slots_[static_cast<std::size_t>(index)]; }
  const WorkerSlot& slot(int index) const noexcept { return slots_[static_cast<std::size_t>(index)]; }

  // Into the ring of the least loaded worker with room if nothing waits before it, else
  // into the backlog (copying `bytes` unless the payload is in an arena block or a memfd).
  void queue_locked(PoolTask task, const char* bytes, std::size_t size);
  void dispatch_backlog_locked();
  bool backlog_empty_locked() const noexcept { return backlog_.empty(); }
  // Tasks not handed to a worker yet, and tasks in workers' rings (PoolStats).
  std::size_t backlog_size_locked() const noexcept { return backlog_.size(); }
  std::size_t inflight_locked() const noexcept;
  // cancel() of the task `ref` names (ResultStateBase::task_id), whose state
  // is already failed: a task still in a ring is marked so its worker skips
  // it, and leaves `inflight`; one its worker claimed is asked to stop. A task
  // in the backlog is dropped when dispatch reaches it. Needs the drain lock too.
  // Without `stop_running`, a claimed task is left alone.
  struct Cancel {
    // backlog: there or not queued yet; done: its worker has finished it
    enum class Where { backlog, ring, running, done } where = Where::backlog;
    int slot = -1;  // where it runs
  };
  Cancel cancel_locked(std::uint64_t ref, bool stop_running = true);
  // A stop to each worker that has run dry, once no busy one has tasks to give.
  void send_stops_locked();
  // Moves tasks a busy worker has not started to a worker with none.
  void steal_for_idle_workers_locked();
  bool all_exited_locked() const;
  std::vector<pid_t> worker_pids_locked() const;
  // A slot without a worker gets one while the pool runs, or closes with tasks still queued.
  bool worker_needed_locked(Lifecycle::Phase phase) const noexcept {
    return phase == Lifecycle::Phase::running || (phase == Lifecycle::Phase::closing && !backlog_.empty());
  }

  void started_locked(int index, pid_t pid, UniqueFd socket);
  // A worker ended (its published results already taken): the task it was
  // running is lost (TaskTimeout if it is `timed_out`), unless it has
  // retries left or was cancelled; the others go back to the backlog; the
  // slot is cleared. Returns the failed tasks.
  std::vector<std::pair<PoolTask, std::exception_ptr>> exited_locked(int index, const WorkerDeath& death,
                                                                     std::uint64_t timed_out);
  // Takes every task the pool still answers for (terminate(), or the zygote
  // gone); with `mark_exited`, no slot has a worker any more.
  void take_all_locked(std::vector<PoolTask>& out, bool mark_exited);
  // The zygote could not fork slot `index`'s worker: returns when to ask again.
  std::int64_t spawn_failed_locked(int index, std::int64_t now_ns);
  // Asks again, through `spawn`, for every worker whose retry is due (or
  // gives it up unless `needed`); returns the next retry time (0: none) and
  // sets `gave_up` if a slot was given up.
  std::int64_t retry_due_locked(std::int64_t now_ns, bool needed, FunctionRef<void(int)> spawn, bool& gave_up);

  // Shared blocks (slot_blocks.cpp). Releases of blocks sent to workers are
  // collected from now on; `wake` runs after each. Not under the mutex.
  void watch_released_blocks(std::function<void()> wake);
  void stop_watching_released_blocks() noexcept;
  // Tells the workers that have them to forget the blocks released since.
  void forget_released_blocks_locked();

 private:
  bool dispatch_locked(PoolTask& task, const char* bytes, std::size_t size);
  // The running task of a worker that ended: its error, or nullptr if it goes back to the backlog for another attempt.
  std::exception_ptr lost_task_locked(PoolTask& task, const WorkerDeath& death, const std::string& why, bool timed_out,
                                      const FrameView* frame);
  // A task back in the backlog, before the others of its priority.
  void requeue_locked(PoolTask task);
  static std::vector<FrameView> unconsumed_frames(const Ring& ring);
  static void take_payload(PoolTask& task, const FrameView& frame);
  // Sends the blocks a task carries that worker `index` lacks; false if the worker is going away.
  bool send_blocks_locked(int index, const SharedBlocks& blocks);

  SharedRegion& region_;
  const PoolOptions& options_;
  PoolWatch& watch_;
  std::vector<WorkerSlot> slots_;
  Backlog<PoolTask> backlog_;
  bool prioritized_ = false;  // a task with a non-zero priority was queued: rings hold fewer
  std::shared_ptr<ReleasedBlocks> released_blocks_;
  std::uint64_t next_id_ = 1;
};

}  // namespace procpool::detail
