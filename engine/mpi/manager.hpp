// Rank 0's side of the MPI pools: one manager thread makes every MPI call
// after initialization. It keeps tasks in flight per worker rank (two, or
// about a millisecond's worth of short ones, several to a message), the rest
// in a backlog, receives the results and hands them to a Completer. With
// nothing to do but wait for results it sleeps on its doorbell (RankBells),
// which a rank rings after sending one.
// Shared values go to a rank once, ahead of its first task that carries one,
// and a forget follows once rank 0 has released the value.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/types.h>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/executor/attachments.hpp"
#include "engine/ipc/side_channel.hpp"
#include "engine/mpi/completer.hpp"
#include "engine/mpi/heartbeat.hpp"
#include "engine/mpi/ledger.hpp"
#include "engine/mpi/rank_bells.hpp"
#include "engine/mpi/task.hpp"
#include "engine/mpi/task_queue.hpp"
#include "engine/mpi/wire.hpp"
#include "procpool/detail/result_state.hpp"

namespace procpool::mpi::detail {

using procpool::detail::ResultStateBase;

// Where a worker rank runs: its pid is only meaningful on rank 0's host.
struct WorkerInfo {
  int rank = 0;
  pid_t pid = 0;
  std::string host;
  bool same_host = false;
  bool bell = false;  // it sleeps on its doorbell in RankBells: ring it after sending to it
  HeartbeatAddress heartbeat;  // where it answers pings (ranks on another host)
};

struct ManagerOptions {
  std::size_t max_message = 0;  // RuntimeOptions::max_message
  // A rank on another host silent this long with tasks out is lost (RuntimeOptions::heartbeat_timeout).
  std::chrono::milliseconds heartbeat_timeout{};
  // Started by `mpirun --enable-recovery`: a lost rank's tasks fail and the
  // pool goes on; without it, a lost rank ends the job (a silent node: rank 0
  // names it and waits for mpirun to end it, see lose_node_locked).
  bool recovery = false;
};

class Manager {
 public:
  // `bells`: rank 0's doorbells, or null (then it polls); they must outlive the manager.
  Manager(MPI_Comm comm, std::vector<WorkerInfo> workers, const ManagerOptions& options, RankBells* bells);
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;
  ~Manager();

  int workers() const noexcept { return static_cast<int>(workers_.size()); }
  std::size_t max_message() const noexcept { return max_message_; }
  std::uint64_t new_pool_id();
  // Queues the task, or fails it at once: PoolTerminated if its pool was
  // cancelled, WorkerLost if no worker is left. Thread-safe.
  void submit(Task task);
  // Fails every unfinished task of `pool` with `error`, drops its backlog and
  // has the workers drop its tasks they have not started. Thread-safe.
  void cancel(std::uint64_t pool, const std::exception_ptr& error);
  // AsyncResult::cancel() (manager_control.cpp): fails the task `task_id`
  // with `error` unless it has finished. A queued one never goes out; its rank
  // drops one sent but not started; one running there runs to its end and its
  // answer is dropped. Returns whether it failed it. Thread-safe, never blocks.
  bool cancel_task(std::uint64_t task_id, const std::exception_ptr& error);
  // Waits until every task sent has been answered, tells the workers to
  // leave, and stops the threads. Idempotent.
  void stop() noexcept;
  // Whether a worker rank was found dead (its tasks failed with WorkerLost).
  bool lost_a_rank() const;

 private:
  // A message of several tasks, kept until MPI reports it sent.
  struct BatchSend {
    std::vector<char> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  struct Worker {
    WorkerInfo info;
    std::deque<Task> inflight;  // sent to this worker, in order
    std::deque<BatchSend> batches;  // batch messages not yet reported sent
    std::unordered_set<std::uint64_t> blocks;  // shared values it holds
    bool lost = false;
    // Its time per task, measured from its answers while it is busy; zero
    // after it fell idle (then only two tasks go out until it answers).
    std::chrono::steady_clock::duration per_task{};
    std::chrono::steady_clock::time_point busy_since{};
    std::uint64_t messages = 0;  // task messages sent to it (Task::sent_in)
    // Its last heartbeat answer, and rank 0's last ping to it (ranks on another host).
    std::chrono::steady_clock::time_point heard{};
    std::chrono::steady_clock::time_point pinged{};
    // When rank 0 last posted a message to it (a rank without the bells: see remote_ring_after).
    std::chrono::steady_clock::time_point last_post{};
  };
  // A result coming in: its first message (the header), then any pieces.
  struct Incoming {
    int source = 0;
    bool pieces_posted = false;
    std::vector<char> message;
    std::vector<char> payload;
    std::vector<MPI_Request> receives;
  };
  struct ControlSend {
    std::uint64_t value = 0;  // a pool id, a task id or a block id
    int rank = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  // Tasks sent ahead to one worker: the one it runs and the next, waiting in
  // MPI's queue, so it never waits for rank 0 between two tasks.
  static constexpr std::size_t tasks_in_flight = 2;

  void run();
  bool idle_locked() const;
  // Whether nothing but a rank's answer (or a submission) can make progress,
  // so the manager may sleep on its bell rather than poll MPI.
  bool may_sleep_locked() const;
  // Rings the ranks that have sends not yet reported complete; whether any has.
  bool ring_unsent_locked() noexcept;
  // Wakes the manager thread, from its condition variable or its bell.
  void wake_locked();
  void ring(const Worker& worker) noexcept;
  // After posting a message `worker` probes for: counts it (RankBells::posted) and rings.
  void posted(Worker& worker) noexcept;
  bool dispatch_locked();
  std::size_t depth(const Worker& worker) const noexcept;
  void send_batch_locked(Worker& worker, std::vector<Task>& tasks);
  // Shared values (manager_shares.cpp): sends the ones `task` carries that
  // `worker` lacks, ahead of it; has the ranks that hold a released one drop it.
  void send_blocks_locked(Worker& worker, Task& task);
  bool send_forgets_locked(const std::vector<std::uint64_t>& released);
  void release_noticed() noexcept;
  bool send_cancels_locked();
  // Cancels and retries (manager_control.cpp): the cancels of single tasks
  // sent to ranks; a task whose rank died, queued again or failed.
  bool send_task_cancels_locked();
  void lose_task_locked(Task& task, const std::exception_ptr& error, bool retry, std::vector<Completion>& done);
  // Lets go of a task's sends to a lost rank, keeping its bytes for good (graveyard_), if it has any.
  void bury_locked(Task& task);
  // Queues a task sent to a lost rank again, from its place in the queue;
  // `ran`: it may have run there (it uses up one of its retries).
  void requeue_locked(Task& task, bool ran);
  // Whether a sent task keeps its bytes until answered, to be sent again:
  // it has retries left, or (under recovery) its rank is on another host,
  // whose loss gives the tasks it had not started to other ranks.
  bool keeps_bytes(const Worker& worker, const Task& task) const noexcept;
  bool test_sends_locked();
  bool receive_locked(std::vector<Completion>& done);
  bool advance_locked(Incoming& incoming, std::vector<Completion>& done);
  // One result of `incoming` (its whole message, or a record of a batch);
  // false if it names no task sent to `w` (then `w` is lost).
  bool answer_locked(Worker& w, const MessageHeader& header, Incoming& incoming, const char* record,
                     std::vector<Completion>& done);
  // Liveness (manager_liveness.cpp): a rank on this host whose process is
  // gone, a rank on another host that stopped answering heartbeats.
  void check_lost_workers_locked(std::vector<Completion>& done);
  // `gap`: the time since the last call (a long one was rank 0's own delay).
  void check_heartbeats_locked(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration gap,
                               std::vector<Completion>& done);
  // A rank on another host went silent: its node died or was cut off.
  void lose_node_locked(Worker& worker, std::chrono::steady_clock::duration silent, std::vector<Completion>& done);
  // `retry`: the rank died (WorkerLost), so its tasks with retries left run
  // again. `requeue_unstarted`: the tasks sent after the message it was
  // running go back to the queue (a rank runs its messages in order).
  void lose_worker_locked(Worker& worker, const std::exception_ptr& error, bool retry, std::vector<Completion>& done,
                          bool requeue_unstarted = false);
  void fail_all_locked(const std::exception_ptr& error, std::vector<Completion>& done);
  static void fail_later(Task& task, const std::exception_ptr& error, std::vector<Completion>& done);
  void send_shutdown() noexcept;

  MPI_Comm comm_;
  std::size_t max_message_;
  ManagerOptions options_;
  HeartbeatMonitor heartbeat_;  // used on the manager thread only

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Worker> workers_;
  TaskQueue backlog_;
  std::set<std::uint64_t> cancelled_;
  std::vector<std::uint64_t> cancels_to_send_;
  // Single tasks cancelled after they were sent: {rank, task id}.
  std::vector<std::pair<int, std::uint64_t>> task_cancels_to_send_;
  std::list<ControlSend> control_sends_;  // a list: MPI may read `value` until its send completes
  std::list<Incoming> incoming_;
  std::list<Task> draining_;  // answered, but their sends not yet reported complete
  std::exception_ptr broken_;  // MPI failed: every task fails with this
  std::uint64_t next_task_ = 1;
  std::uint64_t next_pool_ = 1;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_liveness_check_{};
  std::chrono::steady_clock::time_point last_heartbeat_check_{};
  // Buffers of sends to a lost worker: they may never complete, so they are never freed.
  std::vector<Task> graveyard_;
  std::vector<BatchSend> graveyard_batches_;
  std::list<ControlSend> graveyard_controls_;
  std::vector<Incoming> graveyard_incoming_;  // receives from a lost rank, never completed
  RankBells* bells_;
  // Set (under mutex_) when there is new work for the manager; cleared as a pass starts.
  std::atomic<bool> kicked_{false};
  std::uint64_t results_taken_ = 0;  // result messages probed, against RankBells::posted(0)
  // Shared values released since the manager last looked; taken without mutex_.
  std::shared_ptr<procpool::detail::ReleasedBlocks> released_;
  std::atomic<bool> releases_pending_{false};
  // Set on the manager thread: a value it releases there (under mutex_) needs no wake.
  static thread_local bool on_manager_thread_;

  // Finished tasks are completed, outside mutex_, through it. Declared
  // before thread_: it outlives the manager thread that feeds it.
  Completer completer_;
  std::thread thread_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace procpool::mpi::detail
