#include "engine/pool/pool_core.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include "engine/process/current_process.hpp"
#include "engine/pool/worker.hpp"
#include "engine/ipc/side_channel.hpp"

namespace procpool::detail {

namespace {

// Bytes per ring; a payload over a quarter of it goes through a memfd.
constexpr std::size_t ring_capacity = std::size_t{256} << 10;
// How long the result thread polls before it sleeps.
constexpr std::chrono::microseconds result_spin{10};
// Result frames handled in one go per worker before looking at the others.
constexpr int drain_batch = 256;

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

int checked_processes(const PoolOptions& options) {
  if (options.processes < 0) throw ValueError("procpool::Pool: processes must be at least 1");
  return options.processes == 0 ? cpu_count() : options.processes;
}

}  // namespace

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)), processes_(checked_processes(options_)), region_(processes_, ring_capacity) {
  slots_ = std::vector<Slot>(static_cast<std::size_t>(processes_));
  timed_out_ = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(processes_));
  for (int i = 0; i < processes_; ++i) {
    slots_[static_cast<std::size_t>(i)].tasks = region_.task_ring(i);
    slots_[static_cast<std::size_t>(i)].results = region_.result_ring(i);
  }
  // Everything the workers need is in this object, which the zygote inherits
  // as it is now (options_ included) and keeps unchanged.
  zygote_ = std::make_unique<Zygote>([this, creator = current_process()](int slot, UniqueFd socket, int number) {
    // Named as Python names them; daemonic, like Python's pool workers.
    become_child({"PoolWorker-" + std::to_string(number), 0, true}, creator);
    const WorkerConfig config{&region_, slot, &options_.initializer, options_.maxtasksperchild};
    run_worker(config, std::move(socket));
  });
  for (int i = 0; i < processes_; ++i) zygote_->request({ZygoteRequest::Op::spawn, i, 0, 0});
  // Wait for the first workers here, so worker_pids() is complete on return.
  for (int started = 0; started < processes_;) {
    ZygoteReport report{};
    UniqueFd socket;
    if (!zygote_->read_report(report, socket)) throw Error("procpool::Pool: the zygote died while starting workers");
    if (report.op == ZygoteReport::Op::spawned) {
      on_spawned(report.slot, report.pid, std::move(socket));
      ++started;
    } else if (report.op == ZygoteReport::Op::spawn_failed) {
      throw Error(std::string("procpool::Pool: cannot fork a worker: ") + std::strerror(report.status));
    } else {
      std::lock_guard lock(events_mutex_);
      events_.push_back({report, std::move(socket)});
    }
  }
  released_blocks_ = std::make_shared<ReleasedBlocks>([this] { signal_result_thread(); });
  watch_released_blocks(released_blocks_);
  monitor_wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!monitor_wake_) throw Error("procpool::Pool: cannot create an eventfd");
  result_thread_ = std::thread([this] { result_loop(); });
  monitor_thread_ = std::thread([this] { monitor_loop(); });
}

PoolCore::~PoolCore() {
  if (released_blocks_) released_blocks_->close();
  {
    std::lock_guard lock(mutex_);
    if (phase_ == Phase::running) set_phase_locked(Phase::closing);
  }
  if (!joined_) {
    zygote_->shutdown(std::chrono::milliseconds(2000));
    stop_threads();
  }
}

void PoolCore::check_running(const char* call) const {
  std::lock_guard lock(mutex_);
  check_running_locked(call);
}

void PoolCore::set_phase_locked(Phase phase) {
  phase_ = phase;
  accepting_.store(phase == Phase::running, std::memory_order_relaxed);
}

void PoolCore::check_running_locked(const char* call) const {
  if (phase_ != Phase::running) {
    throw ValueError(std::string("procpool::Pool::") + call + ": pool is " +
                     (phase_ == Phase::closing ? "closed" : "terminated"));
  }
}

void PoolCore::submit(const char* call, std::shared_ptr<ResultStateBase> state,
                      FunctionRef<void(OutputBuffer&)> encode) {
  // A first look without the lock, so a closed pool does not serialize the
  // task; the check that counts is the one under the lock below.
  if (!accepting_.load(std::memory_order_relaxed)) check_running(call);
  // Serialize outside the lock, into a per-thread buffer that is reused.
  thread_local OutputBuffer out;
  out.reset(nullptr, 0, ring_capacity / 4);
  AttachmentScope blocks;  // collects the shared blocks the task's handles name
  if (!serialize_or_fail("procpool::Pool::", call, *state, encode, out)) return;
  state->set_source(weak_from_this());
  Task task;
  task.state = std::move(state);
  task.blocks = blocks.take();
  if (out.storage() == OutputBuffer::Storage::memfd) {
    task.memfd_size = out.size();
    task.memfd.reset(out.release_memfd());
  }
  std::lock_guard lock(mutex_);
  check_running_locked(call);
  task.id = next_id_++;
  if (backlog_.empty() && dispatch_locked(task, out.data(), out.size())) return;
  if (!task.memfd) task.bytes.assign(out.data(), out.data() + out.size());
  backlog_.push_back(std::move(task));
}

bool PoolCore::dispatch_locked(Task& task, const char* bytes, std::size_t size) {
  // The least loaded worker that takes tasks and has room.
  Slot* best = nullptr;
  int best_index = -1;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.state != Slot::State::running || s.stop_sent || s.inflight.size() >= max_inflight_per_worker) continue;
    // A worker leaving after maxtasksperchild gets no task it would not run.
    if (options_.maxtasksperchild != 0 && s.done + s.inflight.size() >= options_.maxtasksperchild) continue;
    if (best == nullptr || s.inflight.size() < best->inflight.size()) {
      best = &s;
      best_index = static_cast<int>(i);
    }
  }
  if (best == nullptr) return false;
  Ring& ring = best->tasks;
  const std::uint64_t length = task.memfd_size;
  const bool large = static_cast<bool>(task.memfd);
  if (large ? !ring.has_room_for(sizeof length) : size > ring.max_payload() || !ring.has_room_for(size)) return false;
  // Block memfds go first: the worker takes them before the payload's.
  if (!task.blocks.empty() && !send_blocks_locked(best_index, task)) return false;
  if (large) {
    try {
      send_fd(best->socket.get(), task.memfd.get(), task.id);
    } catch (const SerializationError&) {
      return false;  // the worker is going away; the task waits for its replacement
    }
  }
  // Into `inflight` before its frame is visible: the worker may answer at
  // once, and the drainer must then find the task. `bytes` may point into
  // task.bytes, which `keep` holds until the copy into the ring is made.
  const std::vector<char> keep = std::move(task.bytes);
  const std::uint64_t id = task.id;
  best->inflight.push_back(std::move(task));
  if (large) {
    ring.push(FrameKind::task, frame_side_channel, id, &length, sizeof length);
  } else {
    ring.push(FrameKind::task, 0, id, bytes, size);
  }
  task_count_changed(1);
  region_.slot(best_index).tasks_bell.ring();
  return true;
}

void PoolCore::dispatch_backlog_locked() {
  while (!backlog_.empty()) {
    Task& task = backlog_.front();
    if (!dispatch_locked(task, task.bytes.data(), task.bytes.size())) return;
    backlog_.pop_front();
  }
}

void PoolCore::send_stops_locked() {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.state == Slot::State::running && !s.stop_sent && s.tasks.push(FrameKind::stop, 0, 0, nullptr, 0)) {
      s.stop_sent = true;
      region_.slot(static_cast<int>(i)).tasks_bell.ring();
    }
  }
}

bool PoolCore::all_exited_locked() const {
  return std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.state == Slot::State::exited; });
}

void PoolCore::close() {
  check_running("close");
  flush_inputs();
  {
    std::lock_guard lock(mutex_);
    check_running_locked("close");
    set_phase_locked(Phase::closing);
  }
  signal_result_thread();
}

void PoolCore::join() {
  {
    std::lock_guard lock(mutex_);
    if (phase_ == Phase::running) {
      throw ValueError("procpool::Pool::join: pool is still running; call close() or terminate() first");
    }
  }
  std::lock_guard join_lock(join_mutex_);
  if (joined_) return;
  if (result_thread_.joinable()) result_thread_.join();
  zygote_->shutdown(std::chrono::milliseconds(2000));
  stop_threads();
  joined_ = true;
}

void PoolCore::terminate() {
  std::vector<Task> unfinished;
  {
    std::scoped_lock lock(drain_mutex_, mutex_);
    check_running_locked("terminate");
    set_phase_locked(Phase::terminated);
    for (Slot& s : slots_) {
      task_count_changed(-static_cast<std::ptrdiff_t>(s.inflight.size()));
      s.inflight.drain([&](Task&& t) { unfinished.push_back(std::move(t)); });
    }
    for (Task& t : backlog_) unfinished.push_back(std::move(t));
    backlog_.clear();
  }
  // SIGKILL, not SIGTERM: a worker that blocks or ignores signals cannot hold us up.
  zygote_->shutdown(std::chrono::milliseconds(2000));
  const auto error = std::make_exception_ptr(
      PoolTerminated("procpool::Pool::terminate: the pool was terminated before the task finished"));
  for (Task& t : unfinished) t.state->fail(error);
  std::lock_guard join_lock(join_mutex_);
  if (joined_) return;
  signal_result_thread();
  if (result_thread_.joinable()) result_thread_.join();
  stop_threads();
  joined_ = true;
}

void PoolCore::finish() noexcept {
  try {
    {
      std::lock_guard lock(mutex_);
      if (phase_ == Phase::running) set_phase_locked(Phase::closing);
    }
    signal_result_thread();
    join();
  } catch (...) {
    // join() only throws while running, which the lines above rule out.
  }
}

int PoolCore::size() const {
  std::lock_guard lock(mutex_);
  check_running_locked("size");
  return processes_;
}

std::vector<pid_t> PoolCore::worker_pids() const {
  std::lock_guard lock(mutex_);
  check_running_locked("worker_pids");
  std::vector<pid_t> pids;
  for (const Slot& s : slots_) {
    if (s.state == Slot::State::running) pids.push_back(s.pid);
  }
  return pids;
}

void PoolCore::signal_result_thread() noexcept {
  signals_.fetch_add(1, std::memory_order_release);
  region_.pool().parent_bell.ring_always();
}

void PoolCore::stop_threads() noexcept {
  pumping_open_.store(false, std::memory_order_release);
  signal_result_thread();
  if (result_thread_.joinable()) result_thread_.join();
  if (monitor_wake_) {
    monitor_stop_.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(monitor_wake_.get(), &one, sizeof one);
  }
  if (monitor_thread_.joinable()) monitor_thread_.join();
}

void PoolCore::result_loop() {
  std::uint32_t seen_signals = signals_.load(std::memory_order_acquire);
  for (;;) {
    std::vector<std::function<void()>> callbacks;
    bool progressed = false;
    bool done = false;
    {
      std::lock_guard drain(drain_mutex_);
      deferred_callbacks = &callbacks;
      progressed = handle_events();
      progressed |= drain_all(true);
      {
        std::lock_guard lock(mutex_);
        done = phase_ == Phase::terminated || (phase_ == Phase::closing && all_exited_locked());
      }
      deferred_callbacks = nullptr;
    }
    {
      std::lock_guard lock(callbacks_mutex_);
      for (auto& c : pumped_callbacks_) callbacks.push_back(std::move(c));
      pumped_callbacks_.clear();
    }
    // Outside every lock: a callback may submit tasks or wait on results.
    run_callbacks(callbacks);
    if (done) return;
    if (progressed || !callbacks.empty()) continue;
    // While a waiter pumps, the results are its to take: spinning here too
    // would only take a core from it or from a worker. (Workers ring when no
    // one pumps; end_pumping() rings if results were left.)
    auto& pumpers = region_.pool().pumpers;
    const bool pumped = pumpers.load(std::memory_order_seq_cst) != 0;
    region_.pool().parent_bell.wait(
        [&] {
          return signals_.load(std::memory_order_acquire) != seen_signals ||
                 (pumpers.load(std::memory_order_seq_cst) == 0 && any_results());
        },
        pumped ? std::chrono::microseconds(0) : result_spin);
    seen_signals = signals_.load(std::memory_order_acquire);
  }
}

bool PoolCore::any_results() const noexcept {
  for (const Slot& s : slots_) {
    if (!s.results.empty()) return true;
  }
  return false;
}

// Takes every ready result, then refills the rings from the backlog (always
// after `changed`, else only if results came in: nothing else frees room).
bool PoolCore::drain_all(bool changed) {
  bool progressed = false;
  for (int i = 0; i < processes_; ++i) progressed |= drain_results(i);
  if (!progressed && !changed) return false;
  std::lock_guard lock(mutex_);
  if (phase_ == Phase::terminated) return progressed;
  dispatch_backlog_locked();
  forget_released_blocks_locked();
  if (progressed) steal_for_idle_workers_locked();
  if (phase_ == Phase::closing && backlog_.empty()) send_stops_locked();
  return progressed;
}

bool PoolCore::pump() noexcept {
  if (!pumping_open_.load(std::memory_order_acquire) || !any_results()) return false;
  std::unique_lock drain(drain_mutex_, std::try_to_lock);
  if (!drain.owns_lock()) return false;
  std::vector<std::function<void()>> callbacks;
  deferred_callbacks = &callbacks;
  bool progressed = false;
  try {
    progressed = drain_all(false);
  } catch (...) {
    // Only a failing mutex could throw here; the result thread will retry.
  }
  deferred_callbacks = nullptr;
  drain.unlock();
  if (!callbacks.empty()) {
    {
      std::lock_guard lock(callbacks_mutex_);
      for (auto& c : callbacks) pumped_callbacks_.push_back(std::move(c));
    }
    signal_result_thread();
  }
  return progressed;
}

void PoolCore::begin_pumping() noexcept { region_.pool().pumpers.fetch_add(1, std::memory_order_seq_cst); }

void PoolCore::end_pumping() noexcept {
  region_.pool().pumpers.fetch_sub(1, std::memory_order_seq_cst);
  // A result published while we counted as a pumper rang no bell: if one is
  // still waiting, make sure the result thread looks.
  if (any_results()) region_.pool().parent_bell.ring();
}

bool PoolCore::drain_results(int index) {
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  // Read a batch of ready frames first, complete their tasks, then hand the
  // space back to the worker in one store.
  std::array<FrameView, drain_batch> frames;
  std::size_t count = 0;
  std::uint64_t position = slot.results.head_position();
  Ring::Peek peek = Ring::Peek::empty;
  while (count < drain_batch && (peek = slot.results.peek_from(position, frames[count])) == Ring::Peek::frame) {
    position += frames[count++].span;
  }
  bool trusted = peek != Ring::Peek::corrupt;
  if (count == 0 && trusted) return false;
  // No pool lock: only this thread (holding drain_mutex_) pops `inflight`.
  std::size_t taken = 0;
  for (; taken < count; ++taken) {
    const FrameView& frame = frames[taken];
    if (frame.header.kind != FrameKind::result || slot.inflight.empty() ||
        slot.inflight.front().id != frame.header.task_id) {
      trusted = false;
      break;
    }
    slot.done.fetch_add(1, std::memory_order_relaxed);
    Task task = std::move(slot.inflight.front());
    slot.inflight.pop_front();
    task_count_changed(-1);
    complete(task, frame, index);
  }
  if (!trusted) {
    // The ring cannot be trusted past a bad frame: replace the worker; its
    // exit fails the task it was running and re-queues the rest.
    if (slot.state == Slot::State::running) zygote_->request({ZygoteRequest::Op::kill, index, slot.pid, SIGKILL});
    slot.results.reset();
  } else {
    slot.results.pop_to(position);
  }
  if (taken != 0) region_.slot(index).results_space_bell.ring();
  return taken != 0;
}

void PoolCore::complete(Task& task, const FrameView& frame, int index) {
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  std::optional<SideChannelPayload> side;
  complete_from_result(*task.state, [&] { return open_payload(frame, slot.socket.get(), side); }, slot.pid);
}

bool PoolCore::handle_events() {
  std::vector<Event> events;
  {
    std::lock_guard lock(events_mutex_);
    events.swap(events_);
  }
  for (Event& e : events) {
    switch (e.report.op) {
      case ZygoteReport::Op::spawned: on_spawned(e.report.slot, e.report.pid, std::move(e.socket)); break;
      case ZygoteReport::Op::exited: on_exited(e.report.slot, e.report.pid, e.report.status); break;
      case ZygoteReport::Op::spawn_failed: on_zygote_lost(); break;
    }
  }
  return !events.empty();
}

void PoolCore::on_spawned(int index, pid_t pid, UniqueFd socket) {
  std::lock_guard lock(mutex_);
  if (index < 0 || index >= processes_) return;
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  slot.pid = pid;
  slot.socket = std::move(socket);
  slot.stop_sent = false;
  slot.done.store(0, std::memory_order_relaxed);
  slot.sent_blocks.clear();  // a new worker has none
  slot.forgets.clear();
  slot.state = Slot::State::running;
}

void PoolCore::on_exited(int index, pid_t pid, int status) {
  if (index < 0 || index >= processes_) return;
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  {
    std::lock_guard lock(mutex_);
    if (slot.state != Slot::State::running || slot.pid != pid) return;
  }
  // Results it published before dying are good: take them first.
  while (drain_results(index)) {
  }
  std::vector<std::pair<Task, std::exception_ptr>> failed;
  {
    std::lock_guard lock(mutex_);
    const std::uint64_t running = region_.slot(index).running_task.load(std::memory_order_acquire);
    const bool ring_corrupt = WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_corrupt_ring;
    const std::string why = describe_exit(pid, status);
    // Of the tasks the worker did not finish, the one it was running is lost;
    // the others never started and go back to the queue.
    const auto frames = unconsumed_frames(slot.tasks);
    std::deque<Task> requeue;
    task_count_changed(-static_cast<std::ptrdiff_t>(slot.inflight.size()));
    const std::uint64_t timed_out = timed_out_[static_cast<std::size_t>(index)].exchange(0);
    slot.inflight.drain([&](Task&& task) {
      const auto frame = std::find_if(frames.begin(), frames.end(),
                                      [&](const FrameView& f) { return f.header.task_id == task.id; });
      if (task.id == running && running == timed_out) {
        failed.emplace_back(std::move(task), std::make_exception_ptr(TaskTimeout(
                                                 "procpool: the task ran past its timeout of " +
                                                 std::to_string(options_.task_timeout.count()) + " ms; " + why)));
      } else if (task.id == running) {
        failed.emplace_back(std::move(task), std::make_exception_ptr(WorkerLost(why + " while running the task")));
      } else if (ring_corrupt || frame == frames.end()) {
        failed.emplace_back(std::move(task), std::make_exception_ptr(SerializationError(
                                                 "procpool: the task's frame in shared memory was corrupted (" + why + ")")));
      } else {
        take_payload(task, *frame);
        requeue.push_back(std::move(task));
      }
    });
    backlog_.insert(backlog_.begin(), std::make_move_iterator(requeue.begin()), std::make_move_iterator(requeue.end()));
    slot.tasks.reset();
    slot.results.reset();
    region_.slot(index).running_task.store(0, std::memory_order_relaxed);
    slot.pid = 0;
    slot.socket.reset();
    slot.stop_sent = false;
    slot.state = Slot::State::exited;
    const bool needed = phase_ == Phase::running || (phase_ == Phase::closing && !backlog_.empty());
    if (needed) {
      slot.state = Slot::State::starting;
      zygote_->request({ZygoteRequest::Op::spawn, index, 0, 0});
    }
  }
  for (auto& [task, error] : failed) task.state->fail(error);
}

std::vector<FrameView> PoolCore::unconsumed_frames(const Ring& ring) {
  // Stops at the first frame that does not validate: the rest cannot be found.
  std::vector<FrameView> frames;
  FrameView frame{};
  for (std::uint64_t position = ring.head_position(); ring.peek_at(position, frame); position += frame.span) {
    if (frame.header.kind == FrameKind::task && (ring.marks(frame) & frame_stolen) == 0) frames.push_back(frame);
  }
  return frames;
}

void PoolCore::take_payload(Task& task, const FrameView& frame) {
  // A large payload's memfd is still held by the task; a small one is copied out of the ring.
  if ((frame.header.flags & frame_side_channel) == 0) task.bytes.assign(frame.payload, frame.payload + frame.header.size);
}

void PoolCore::steal_for_idle_workers_locked() {
  if (!backlog_.empty()) return;
  for (Slot& idle : slots_) {
    if (idle.state != Slot::State::running || idle.stop_sent || !idle.inflight.empty()) continue;
    // About to retire: it would take nothing, and the tasks would bounce back.
    if (options_.maxtasksperchild != 0 && idle.done >= options_.maxtasksperchild) continue;
    Slot* busiest = nullptr;
    for (Slot& s : slots_) {
      if (s.state == Slot::State::running && s.inflight.size() >= 2 &&
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
    std::deque<Task> stolen;
    std::vector<Task> kept;
    std::size_t next = 0;
    busiest->inflight.drain([&](Task&& task) {
      if (next < marked.size() && task.id == marked[next].header.task_id) {
        take_payload(task, marked[next++]);
        stolen.push_back(std::move(task));
      } else {
        kept.push_back(std::move(task));
      }
    });
    for (Task& task : kept) busiest->inflight.push_back(std::move(task));
    task_count_changed(-static_cast<std::ptrdiff_t>(stolen.size()));
    backlog_.insert(backlog_.begin(), std::make_move_iterator(stolen.begin()), std::make_move_iterator(stolen.end()));
    dispatch_backlog_locked();
  }
}

void PoolCore::on_zygote_lost() {
  // Without the zygote no worker can be started again: fail what is left.
  std::vector<Task> lost;
  {
    std::lock_guard lock(mutex_);
    for (Slot& s : slots_) {
      task_count_changed(-static_cast<std::ptrdiff_t>(s.inflight.size()));
      s.inflight.drain([&](Task&& t) { lost.push_back(std::move(t)); });
      s.state = Slot::State::exited;
      s.pid = 0;
    }
    for (Task& t : backlog_) lost.push_back(std::move(t));
    backlog_.clear();
    if (phase_ == Phase::running) set_phase_locked(Phase::closing);
  }
  const auto error = std::make_exception_ptr(WorkerLost("procpool: the pool's zygote process died; no worker is left"));
  for (Task& t : lost) t.state->fail(error);
}

void PoolCore::task_count_changed(std::ptrdiff_t delta) {
  // Only the time-out watch reads the count: without one, spare the submitter
  // and the drainer a cache line they would pass back and forth per task.
  if (options_.task_timeout.count() <= 0) return;
  const std::size_t before = inflight_total_.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
  if (before == 0 && delta > 0 && monitor_wake_) {
    // Wake the monitor so it starts watching the clock.
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(monitor_wake_.get(), &one, sizeof one);
  }
}

int PoolCore::monitor_poll_timeout_ms() const {
  const auto timeout = options_.task_timeout.count();
  if (timeout <= 0 || inflight_total_.load(std::memory_order_relaxed) == 0) return -1;
  // Check four times per time-out period: a task is killed at most 25% late.
  return static_cast<int>(std::clamp<std::int64_t>(timeout / 4, 1, 100));
}

void PoolCore::kill_timed_out_tasks() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::int64_t now = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  const std::int64_t limit = std::chrono::nanoseconds(options_.task_timeout).count();
  std::lock_guard lock(mutex_);
  for (int i = 0; i < processes_; ++i) {
    const SlotControl& shared = region_.slot(i);
    const std::uint64_t task = shared.running_task.load(std::memory_order_acquire);
    const Slot& slot = slots_[static_cast<std::size_t>(i)];
    if (task == 0 || slot.state != Slot::State::running) continue;
    if (now - shared.started_ns.load(std::memory_order_relaxed) < limit) continue;
    if (timed_out_[static_cast<std::size_t>(i)].exchange(task) != task) {
      zygote_->request({ZygoteRequest::Op::kill, i, slot.pid, SIGKILL});
    }
  }
}

void PoolCore::monitor_loop() {
  bool stopping = false;
  while (!stopping) {
    pollfd fds[2] = {{zygote_->control_fd(), POLLIN, 0}, {monitor_wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, monitor_poll_timeout_ms()) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (options_.task_timeout.count() > 0) kill_timed_out_tasks();
    if (fds[1].revents != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto n = ::read(monitor_wake_.get(), &count, sizeof count);
      stopping = monitor_stop_.load(std::memory_order_acquire);
      continue;
    }
    if (fds[0].revents == 0) continue;
    Event event{};
    const bool alive = zygote_->read_report(event.report, event.socket);
    if (!alive) event.report = {ZygoteReport::Op::spawn_failed, -1, -1, 0};
    {
      std::lock_guard lock(events_mutex_);
      events_.push_back(std::move(event));
    }
    signal_result_thread();
    if (!alive) return;
  }
}

}  // namespace procpool::detail
