#include "engine/pool/slot_table.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <string>
#include <sys/wait.h>

#include "engine/ipc/side_channel.hpp"
#include "engine/pool/pool_watch.hpp"
#include "engine/pool/worker.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// A worker the zygote could not fork is asked for again after 10 ms, then
// after twice as long each time, up to a second.
constexpr std::chrono::milliseconds first_spawn_retry{10};
constexpr std::chrono::milliseconds max_spawn_retry{1000};

std::string describe_exit(pid_t pid, int status) {
  std::string text = "procpool: worker pid " + std::to_string(pid);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    text += " was killed by signal " + std::to_string(sig) + (name != nullptr ? std::string(" (SIG") + name + ")" : "");
  } else if (WIFEXITED(status)) {
    text += " exited with status " + std::to_string(WEXITSTATUS(status));
  } else {
    text += " ended (wait status " + std::to_string(status) + ")";
  }
  return text;
}

}  // namespace

SlotTable::SlotTable(SharedRegion& region, const PoolOptions& options, PoolWatch& watch, int processes)
    : region_(region), options_(options), watch_(watch), slots_(static_cast<std::size_t>(processes)) {
  for (int i = 0; i < processes; ++i) {
    slot(i).tasks = region_.task_ring(i);
    slot(i).results = region_.result_ring(i);
  }
}

void SlotTable::queue_locked(PoolTask task, const char* bytes, std::size_t size) {
  task.id = next_id_++;
  task.state->set_task_id(task.id);
  if (task.state->ready()) return;  // cancelled while it was being serialized
  const int priority = task.options.priority;
  prioritized_ |= priority != 0;
  if (backlog_.empty() && dispatch_locked(task, bytes, size)) return;
  if (!task.large()) task.bytes.assign(bytes, bytes + size);
  backlog_.push_back(std::move(task), priority);
}

bool SlotTable::dispatch_locked(PoolTask& task, const char* bytes, std::size_t size) {
  const TaskAttachments* const attached = task.attached.get();
  const std::uint64_t length = attached ? attached->large_size : 0;
  const bool in_arena = attached && attached->block;
  const bool in_memfd = attached && attached->memfd;
  const ArenaRef ref{in_arena ? attached->block.block().offset : 0, length};
  const std::uint16_t measured = task.submitted_ns != 0 ? frame_timed : 0;
  const std::size_t frame_bytes = in_arena ? sizeof ref : in_memfd ? sizeof length : size;
  // The least loaded worker that takes tasks and has room in its ring. Room
  // counts: the least loaded may have none (frames it has yet to skip, or
  // a starved worker), and giving up then would leave the task waiting for
  // a result that the worker with room may never send.
  WorkerSlot* best = nullptr;
  int best_index = -1;
  const std::size_t room = prioritized_ ? prioritized_inflight_per_worker : max_inflight_per_worker;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    WorkerSlot& s = slots_[i];
    if (s.state != WorkerSlot::State::running || s.stop_sent || s.inflight.size() >= room) continue;
    // A worker leaving after maxtasksperchild gets no task it would not run.
    if (options_.maxtasksperchild != 0 && s.done + s.inflight.size() >= options_.maxtasksperchild) continue;
    if (best != nullptr && s.inflight.size() >= best->inflight.size()) continue;
    if ((!task.large() && size > s.tasks.max_payload()) || !s.tasks.has_room_for(frame_bytes)) continue;
    best = &s;
    best_index = static_cast<int>(i);
  }
  if (best == nullptr) return false;
  Ring& ring = best->tasks;
  // Block memfds go first: the worker takes them before the payload's.
  if (attached && !attached->blocks.empty() && !send_blocks_locked(best_index, attached->blocks)) return false;
  if (in_memfd) {
    try {
      send_fd(best->socket.get(), attached->memfd.get(), task.id);
    } catch (const SerializationError&) {
      return false;  // the worker is going away; the task waits for its replacement
    }
  }
  // Into `inflight` before its frame is visible: the worker may answer at
  // once, and the drainer must then find the task. `bytes` may point into
  // task.bytes, which `keep` holds until the copy into the ring is made.
  const bool own_bytes = bytes == task.bytes.data();
  const TaskBytes keep = std::move(task.bytes);
  if (own_bytes) bytes = keep.data();
  const std::uint64_t id = task.id;
  task.state->set_task_id(id | static_cast<std::uint64_t>(best_index + 1) << task_ref_slot_shift);
  if (task.timed()) watch_.watch_task(id, task.options, task.state);
  best->inflight.push_back(std::move(task));
  if (in_arena) {
    ring.push(FrameKind::task, static_cast<std::uint16_t>(frame_arena | measured), id, &ref, sizeof ref);
  } else if (in_memfd) {
    ring.push(FrameKind::task, static_cast<std::uint16_t>(frame_side_channel | measured), id, &length, sizeof length);
  } else {
    ring.push(FrameKind::task, measured, id, bytes, size);
  }
  watch_.task_count_changed(1);
  region_.slot(best_index).tasks_bell.ring();
  return true;
}

void SlotTable::dispatch_backlog_locked() {
  while (!backlog_.empty()) {
    PoolTask& task = backlog_.front();
    // A task cancelled while it waited here leaves now: cancel() never looks for it.
    if (!task.state->ready() && !dispatch_locked(task, task.bytes.data(), task.bytes.size())) return;
    backlog_.pop_front();
  }
}

void SlotTable::send_stops_locked() {
  // Only a worker that has run dry is told to stop, and none while a busy
  // one holds tasks it has not started: a stop queued behind a worker's
  // tasks, or sent before it took its share, would leave the rest to one
  // worker (ten 0.1 s tasks on two workers then took 1 s, not 0.5 s).
  // Its last result brings the drainer back here. inflight shrinks only
  // behind our back, so an empty one read here stays empty.
  const auto busy = [](const WorkerSlot& s) { return s.state == WorkerSlot::State::running && s.inflight.size() >= 2; };
  if (std::any_of(slots_.begin(), slots_.end(), busy)) return;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    WorkerSlot& s = slots_[i];
    if (s.state == WorkerSlot::State::running && !s.stop_sent && s.inflight.empty() &&
        s.tasks.push(FrameKind::stop, 0, 0, nullptr, 0)) {
      s.stop_sent = true;
      region_.slot(static_cast<int>(i)).tasks_bell.ring();
    }
  }
}

bool SlotTable::all_exited_locked() const {
  return std::all_of(slots_.begin(), slots_.end(),
                     [](const WorkerSlot& s) { return s.state == WorkerSlot::State::exited; });
}

std::size_t SlotTable::inflight_locked() const noexcept {
  std::size_t n = 0;
  for (const WorkerSlot& s : slots_) n += s.inflight.size();
  return n;
}

std::vector<pid_t> SlotTable::worker_pids_locked() const {
  std::vector<pid_t> pids;
  for (const WorkerSlot& s : slots_) {
    if (s.state == WorkerSlot::State::running) pids.push_back(s.pid);
  }
  return pids;
}

void SlotTable::started_locked(int index, pid_t pid, UniqueFd socket) {
  if (index < 0 || index >= size()) return;
  WorkerSlot& s = slot(index);
  s.pid = pid;
  s.socket = std::move(socket);
  s.stop_sent = false;
  s.done.store(0, std::memory_order_relaxed);
  s.spawn_backoff = std::chrono::milliseconds(0);
  s.sent_blocks.clear();  // a new worker has none
  s.forgets.clear();
  s.state = WorkerSlot::State::running;
}

std::vector<std::pair<PoolTask, std::exception_ptr>> SlotTable::exited_locked(int index, const WorkerDeath& death,
                                                                              std::uint64_t timed_out) {
  const int status = death.status;
  std::vector<std::pair<PoolTask, std::exception_ptr>> failed;
  WorkerSlot& slot = this->slot(index);
  const std::uint64_t running = region_.slot(index).running_task.load(std::memory_order_acquire);
  const bool ring_corrupt = WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_corrupt_ring;
  const std::string why = describe_exit(death.pid, status);
  // Of the tasks the worker did not finish, the one it was running is lost;
  // the others never started and go back to the queue.
  const auto frames = unconsumed_frames(slot.tasks);
  std::vector<PoolTask> requeue;
  watch_.task_count_changed(-static_cast<std::ptrdiff_t>(slot.inflight.size()));
  slot.inflight.drain([&](PoolTask&& task) {
    const auto frame = std::find_if(frames.begin(), frames.end(),
                                    [&](const FrameView& f) { return f.header.task_id == task.id; });
    if (task.id == running) {
      const FrameView* payload = ring_corrupt || frame == frames.end() ? nullptr : &*frame;
      if (auto error = lost_task_locked(task, death, why, running == timed_out, payload)) {
        failed.emplace_back(std::move(task), std::move(error));
      } else if (!task.state->ready()) {
        requeue.push_back(std::move(task));  // another attempt
      }
    } else if (ring_corrupt || frame == frames.end()) {
      failed.emplace_back(std::move(task), std::make_exception_ptr(SerializationError(
                                               "procpool: the task's frame in shared memory was corrupted (" + why + ")")));
    } else {
      take_payload(task, *frame);
      requeue.push_back(std::move(task));
    }
  });
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) requeue_locked(std::move(*it));
  slot.tasks.reset();
  slot.results.reset();
  region_.slot(index).running_task.store(0, std::memory_order_relaxed);
  region_.slot(index).stop_task.store(0, std::memory_order_relaxed);
  region_.slot(index).arena_results_taken.store(0, std::memory_order_relaxed);  // the next worker starts afresh
  slot.pid = 0;
  slot.socket.reset();
  slot.stop_sent = false;
  slot.state = WorkerSlot::State::exited;
  return failed;
}

void SlotTable::take_all_locked(std::vector<PoolTask>& out, bool mark_exited) {
  for (WorkerSlot& s : slots_) {
    watch_.task_count_changed(-static_cast<std::ptrdiff_t>(s.inflight.size()));
    s.inflight.drain([&](PoolTask&& t) { out.push_back(std::move(t)); });
    if (mark_exited) {
      s.state = WorkerSlot::State::exited;
      s.pid = 0;
    }
  }
  backlog_.drain([&](PoolTask&& t) { out.push_back(std::move(t)); });
}

std::int64_t SlotTable::spawn_failed_locked(int index, std::int64_t now_ns) {
  if (index < 0 || index >= size() || slot(index).state != WorkerSlot::State::starting) return 0;
  WorkerSlot& s = slot(index);
  s.spawn_backoff = s.spawn_backoff.count() == 0 ? first_spawn_retry : std::min(2 * s.spawn_backoff, max_spawn_retry);
  s.retry_at_ns = now_ns + std::chrono::nanoseconds(s.spawn_backoff).count();
  s.state = WorkerSlot::State::retrying;
  return s.retry_at_ns;
}

std::int64_t SlotTable::retry_due_locked(std::int64_t now_ns, bool needed, FunctionRef<void(int)> spawn,
                                         bool& gave_up) {
  std::int64_t next = 0;
  for (int i = 0; i < size(); ++i) {
    WorkerSlot& s = slot(i);
    if (s.state != WorkerSlot::State::retrying) continue;
    if (s.retry_at_ns > now_ns) {
      next = next == 0 ? s.retry_at_ns : std::min(next, s.retry_at_ns);
    } else if (needed) {
      s.state = WorkerSlot::State::starting;
      spawn(i);
    } else {
      s.state = WorkerSlot::State::exited;
      gave_up = true;
    }
  }
  return next;
}

std::vector<FrameView> SlotTable::unconsumed_frames(const Ring& ring) {
  // Stops at the first frame that does not validate: the rest cannot be found.
  std::vector<FrameView> frames;
  FrameView frame{};
  for (std::uint64_t position = ring.head_position(); ring.peek_at(position, frame); position += frame.span) {
    if (frame.header.kind == FrameKind::task && (ring.marks(frame) & frame_stolen) == 0) frames.push_back(frame);
  }
  return frames;
}

void SlotTable::take_payload(PoolTask& task, const FrameView& frame) {
  // A large payload's block or memfd is still held by the task; a small one is copied out of the ring.
  if (!task.large()) task.bytes.assign(frame.payload, frame.payload + frame.header.size);
}

void SlotTable::steal_for_idle_workers_locked() {
  if (!backlog_.empty()) return;
  for (WorkerSlot& idle : slots_) {
    if (idle.state != WorkerSlot::State::running || idle.stop_sent || !idle.inflight.empty()) continue;
    // About to retire: it would take nothing, and the tasks would bounce back.
    if (options_.maxtasksperchild != 0 && idle.done >= options_.maxtasksperchild) continue;
    WorkerSlot* busiest = nullptr;
    for (WorkerSlot& s : slots_) {
      if (s.state == WorkerSlot::State::running && s.inflight.size() >= 2 &&
          (busiest == nullptr || s.inflight.size() > busiest->inflight.size())) {
        busiest = &s;
      }
    }
    if (busiest == nullptr) return;
    // Take the newer half of what its worker has not claimed yet.
    std::vector<FrameView> waiting;
    for (const FrameView& f : unconsumed_frames(busiest->tasks)) {
      if ((busiest->tasks.marks(f) & frame_claimed) == 0) waiting.push_back(f);
    }
    std::vector<FrameView> marked;
    for (std::size_t i = waiting.size() / 2; i < waiting.size(); ++i) {
      if (busiest->tasks.try_mark(waiting[i], frame_stolen)) marked.push_back(waiting[i]);
    }
    // inflight and the ring hold the tasks in the same order: one pass splits them.
    std::deque<PoolTask> stolen;
    std::vector<PoolTask> kept;
    std::size_t next = 0;
    busiest->inflight.drain([&](PoolTask&& task) {
      if (next < marked.size() && task.id == marked[next].header.task_id) {
        take_payload(task, marked[next++]);
        stolen.push_back(std::move(task));
      } else {
        kept.push_back(std::move(task));
      }
    });
    for (PoolTask& task : kept) busiest->inflight.push_back(std::move(task));
    watch_.task_count_changed(-static_cast<std::ptrdiff_t>(stolen.size()));
    for (auto it = stolen.rbegin(); it != stolen.rend(); ++it) requeue_locked(std::move(*it));
    dispatch_backlog_locked();
  }
}

}  // namespace procpool::detail
