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
#include <sys/types.h>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/executor/attachments.hpp"
#include "engine/executor/lifecycle.hpp"
#include "engine/ipc/arena_block.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/pool/spsc_queue.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/pool.hpp"

namespace procpool::detail {

class PoolWatch;

// A task the parent still answers for: queued here, or in a worker's ring.
struct PoolTask {
  std::uint64_t id = 0;
  std::shared_ptr<ResultStateBase> state;
  std::vector<char> bytes;  // the payload, while it waits in the backlog
  ArenaBlock block;             // a large payload in the task arena, kept until its result is in
  UniqueFd memfd;               // or one too large for the arena, in a memfd of its own
  std::uint64_t large_size = 0;  // the bytes of either
  SharedBlocks blocks;      // shared data its handles name, kept until its result is in

  bool large() const noexcept { return block || memfd; }
};

// Tasks queued in one worker's ring at most; more wait in the parent's
// backlog. Enough that a burst of small tasks goes straight to the rings;
// a worker that runs dry takes half of a busy one's unstarted tasks.
inline constexpr std::size_t max_inflight_per_worker = 1024;

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

  // Into the least loaded worker's ring if nothing waits before it, else
  // into the backlog (copying `bytes` unless the payload is in an arena block or a memfd).
  void queue_locked(PoolTask task, const char* bytes, std::size_t size);
  void dispatch_backlog_locked();
  bool backlog_empty_locked() const noexcept { return backlog_.empty(); }
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
  // running is lost (TaskTimeout if it is `timed_out`), the others go back
  // to the backlog; the slot is cleared. Returns the failed tasks.
  std::vector<std::pair<PoolTask, std::exception_ptr>> exited_locked(int index, pid_t pid, int status,
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
  static std::vector<FrameView> unconsumed_frames(const Ring& ring);
  static void take_payload(PoolTask& task, const FrameView& frame);
  // Sends the blocks `task` carries that worker `index` lacks; false if the worker is going away.
  bool send_blocks_locked(int index, const PoolTask& task);

  SharedRegion& region_;
  const PoolOptions& options_;
  PoolWatch& watch_;
  std::vector<WorkerSlot> slots_;
  std::deque<PoolTask> backlog_;
  std::shared_ptr<ReleasedBlocks> released_blocks_;
  std::uint64_t next_id_ = 1;
};

}  // namespace procpool::detail
