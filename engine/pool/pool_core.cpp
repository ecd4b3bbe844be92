#include "engine/pool/pool_core.hpp"

#include <algorithm>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/wait.h>
#include <utility>

#include "engine/executor/attachments.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/process/current_process.hpp"
#include "engine/pool/crash_handler.hpp"
#include "engine/pool/worker.hpp"
#include "engine/ipc/arena_store.hpp"
#include "engine/sys/constants.hpp"
#include "engine/sys/symbolizer.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// Bytes per ring; a payload over a quarter of it goes to the payload arena.
constexpr std::size_t ring_capacity = std::size_t{256} << 10;

int checked_processes(const PoolOptions& options) {
  if (options.processes < 0) throw ValueError("procpool::Pool: processes must be at least 1");
  return options.processes == 0 ? cpu_count() : options.processes;
}

// Opened before any process is forked: a path that cannot be written fails the constructor at once.
std::unique_ptr<TraceWriter> open_trace(const PoolOptions& options) {
  if (options.trace_path.empty()) return nullptr;
  return std::make_unique<TraceWriter>(options.trace_path, PoolWatch::now_ns());
}

}  // namespace

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      processes_(checked_processes(options_)),
      region_(processes_, ring_capacity),
      arenas_(processes_, task_arena_bytes, result_arena_bytes),
      task_arena_(std::make_shared<ArenaAllocator>(arenas_.tasks(), payload_warm_bytes)),
      pending_(options_.max_pending == 0 ? nullptr : std::make_shared<PendingLimit>(options_.max_pending)),
      watch_(options_, region_, processes_),
      table_(region_, options_, watch_, processes_),
      trace_(open_trace(options_)),
      stats_(processes_, trace_ != nullptr),
      drainer_(region_, arenas_, table_, watch_, lifecycle_, stats_, trace_.get()),
      start_failures_(processes_),
      first_start_pending_(static_cast<std::size_t>(processes_), 1),
      first_starts_pending_(processes_) {
  prepare_crash_handler();  // once, here, rather than in every worker as it starts
  // Everything the workers need is in this object, which the zygote inherits
  // as it is now (options_ included) and keeps unchanged.
  zygote_ = std::make_unique<Zygote>([this, creator = current_process()](int slot, UniqueFd socket, int number) {
    // Named as Python names them; daemonic, like Python's pool workers.
    become_child({"PoolWorker-" + std::to_string(number), 0, true}, creator);
    const WorkerConfig config{&region_, &arenas_, slot, &options_.initializer, options_.maxtasksperchild};
    run_worker(config, std::move(socket));
  }, options_.keep_fds);
  // Our zygote has them; the zygotes of pools built later must not keep them mapped.
  region_exclusion_.emplace(region_.address(), region_.size());
  arena_exclusion_.emplace(arenas_.mapping().data(), arenas_.mapping().size());
  start_workers();
  table_.watch_released_blocks([this] { drainer_.signal(); });
  drainer_.start(*zygote_, [this] { return handle_events(); });
  watch_.start(*zygote_, table_, lifecycle_, [this] { drainer_.signal(); });
}

void PoolCore::start_workers() {
  const auto spawn = [this](int slot) { zygote_->request({ZygoteRequest::Op::spawn, slot, 0, 0}); };
  for (int i = 0; i < processes_; ++i) spawn(i);
  // Until one worker has started: the first task can go to it while the
  // zygote forks the others, whose reports the watch then reads (and
  // worker_pids() waits for). Retries still due are the watch's too.
  std::int64_t next_retry = 0;
  for (;;) {
    {
      std::lock_guard lock(lifecycle_.mutex());
      if (next_retry != 0 && next_retry <= PoolWatch::now_ns()) {
        bool gave_up = false;
        next_retry = table_.retry_due_locked(PoolWatch::now_ns(), true, spawn, gave_up);
      }
      if (!table_.worker_pids_locked().empty()) {
        if (next_retry != 0) watch_.retry_at_locked(next_retry);
        return;
      }
    }
    const std::int64_t wait_ns = next_retry == 0 ? -1 : std::max<std::int64_t>(next_retry - PoolWatch::now_ns(), 0);
    pollfd control{zygote_->control_fd(), POLLIN, 0};
    if (::poll(&control, 1, wait_ns < 0 ? -1 : static_cast<int>(wait_ns / 1'000'000 + 1)) <= 0) continue;
    ZygoteReport report{};
    UniqueFd socket;
    if (!zygote_->read_report(report, socket)) throw Error("procpool::Pool: the zygote died while starting workers");
    if (report.op == ZygoteReport::Op::spawned) {
      on_spawned(report.slot, report.pid, std::move(socket));
    } else if (report.op == ZygoteReport::Op::spawn_failed) {
      std::lock_guard lock(lifecycle_.mutex());
      const std::int64_t now = PoolWatch::now_ns();
      if (const std::int64_t when = table_.spawn_failed_locked(report.slot, now); when != 0) {
        next_retry = next_retry == 0 ? when : std::min(next_retry, when);
      }
      first_start_answered_locked(report.slot);
      const std::string why = start_failures_.fork_failed(report.status, now, !table_.worker_pids_locked().empty());
      if (!why.empty()) throw BrokenPool("procpool::Pool: pool is broken: " + why);
    } else {
      watch_.push({PoolWatch::Event::Kind::report, report, std::move(socket)});
    }
  }
}

std::shared_ptr<PoolCore> PoolCore::create(PoolOptions options) {
  auto core = std::make_shared<PoolCore>(std::move(options));
  core->set_result_source(std::shared_ptr<ResultSource>(core, &core->drainer_));
  return core;
}

PoolCore::~PoolCore() {
  table_.stop_watching_released_blocks();
  lifecycle_.terminate();
}

void PoolCore::queue(const char* call, std::shared_ptr<ResultStateBase> state, FunctionRef<void(OutputBuffer&)> encode,
                     const TaskOptions& options, bool deferred) {
  // A first look without the lock, so a closed pool does not serialize the
  // task; the check that counts is the one under the lock below.
  if (!lifecycle_.accepting() && !deferred) check_running(call);
  if (pending_) {
    // max_pending: wait for a place (pumping results meanwhile).
    if (pending_->acquire(&drainer_)) {
      state->hold_place(pending_);
    } else if (!deferred) {
      check_running(call);  // released by close() or terminate(): throws as a closed pool does
    }
  }
  // Serialize outside the lock, into a per-thread buffer that is reused.
  // A large payload is written straight into this pool's task arena.
  thread_local ArenaStore spill;
  thread_local OutputBuffer out(&spill);
  out.reset(nullptr, 0, ring_capacity / 4);
  spill.use(task_arena_);
  AttachmentScope blocks;  // collects the shared blocks the task's handles name
  bool encoded = false;
  try {
    encoded = serialize_or_fail(call, *state, encode, out);
  } catch (...) {  // not a std::exception: it goes to the caller, the half-written block back to the arena
    out.reset(nullptr, 0, 0);
    spill.use(nullptr);
    state->give_place_back();
    throw;
  }
  PoolTask task;
  if (encoded && out.storage() == OutputBuffer::Storage::spilled) {
    TaskAttachments& attached = task.attachments();
    attached.large_size = out.size();
    ArenaStore::Taken taken = spill.take(out);
    attached.block = std::move(taken.block);
    attached.memfd = std::move(taken.memfd);
  }
  if (!encoded) out.reset(nullptr, 0, 0);  // gives a half-written block back while the arena is mapped
  spill.use(nullptr);                       // the thread's store must not keep this pool's arena alive
  if (!encoded) {
    stats_.unqueued_failure();
    return;
  }
  state->set_source(result_source());
  task.state = std::move(state);
  if (SharedBlocks named = blocks.take(); !named.empty()) task.attachments().blocks = std::move(named);
  task.options = options;
  ResultStateBase* const queued = task.state.get();  // the caller holds it too
  std::unique_lock lock(lifecycle_.mutex());
  try {
    lifecycle_.check_queueing_locked(call, deferred);
    task.submitted_ns = stats_.queued_locked();
    table_.queue_locked(std::move(task), out.data(), out.size());
  } catch (...) {
    lock.unlock();
    queued->give_place_back();  // never queued
    throw;
  }
}

int PoolCore::size() const {
  std::lock_guard lock(lifecycle_.mutex());
  lifecycle_.check_running_locked("size");
  return processes_;
}

std::vector<pid_t> PoolCore::worker_pids() const {
  std::unique_lock lock(lifecycle_.mutex());
  lifecycle_.check_running_locked("worker_pids");
  wait_first_starts(lock);
  lifecycle_.check_running_locked("worker_pids");
  return table_.worker_pids_locked();
}

void PoolCore::wait_first_starts(std::unique_lock<std::mutex>& lock) const {
  // Just after the constructor the zygote may still be forking some: a few
  // ms. Not on the result thread (a callback), which answers them itself.
  if (drainer_.on_result_thread()) return;
  started_changed_.wait(lock, [&] {
    return first_starts_pending_ == 0 || lifecycle_.phase_locked() != Lifecycle::Phase::running;
  });
}

void PoolCore::first_start_answered_locked(int slot) noexcept {
  if (slot < 0 || slot >= processes_ || first_start_pending_[static_cast<std::size_t>(slot)] == 0) return;
  first_start_pending_[static_cast<std::size_t>(slot)] = 0;
  if (--first_starts_pending_ == 0) started_changed_.notify_all();
}

PoolStats PoolCore::stats() const {
  PoolStats stats;
  stats_.fill(stats);
  {
    std::unique_lock lock(lifecycle_.mutex());
    wait_first_starts(lock);
    std::size_t running = 0;
    for (int i = 0; i < processes_; ++i) {
      const WorkerSlot& slot = table_.slot(i);
      if (slot.state != WorkerSlot::State::running) continue;
      if (region_.slot(i).running_task.load(std::memory_order_relaxed) != 0) ++running;
      stats.workers.push_back({i, slot.pid, slot.done.load(std::memory_order_relaxed), 0, 0.0});
    }
    // A worker's running task is in its inflight queue until its result is read.
    const std::size_t inflight = table_.inflight_locked();
    stats.running = std::min(running, inflight);
    stats.queued = table_.backlog_size_locked() + inflight - stats.running;
  }
  for (WorkerStats& worker : stats.workers) StatsRecorder::read_process(worker);  // no lock held
  return stats;
}

void PoolCore::closing() noexcept {
  stop_limiting();
  started_changed_.notify_all();  // worker_pids() waiting for a first start throws now
  {
    // Nothing queued: the workers are told to stop from here rather than
    // once the result thread has woken up to do it (as it does otherwise).
    std::lock_guard lock(lifecycle_.mutex());
    if (lifecycle_.phase_locked() == Lifecycle::Phase::closing && table_.backlog_empty_locked() &&
        lifecycle_.deferred_locked() == 0) {
      table_.send_stops_locked();
      drainer_.finish_zygote_locked();
    }
  }
  drainer_.signal();
}

void PoolCore::stop_now(const std::exception_ptr& error) noexcept {
  // The zygote SIGKILLs the workers at once (not SIGTERM: a worker that
  // blocks or ignores signals cannot hold us up); join() reaps them.
  zygote_->request({ZygoteRequest::Op::shutdown, 0, 0, 0});
  stop_limiting();
  started_changed_.notify_all();  // worker_pids() waiting for a first start throws now
  for (PoolTask& t : terminated_tasks_) {
    if (t.state->fail(error)) stats_.failed();
  }
  terminated_tasks_.clear();
  drainer_.signal();
}

void PoolCore::wait_stopped() noexcept {
  drainer_.join_thread();
  zygote_->shutdown(shutdown_grace);
  drainer_.stop();
  watch_.stop();
  if (trace_) trace_->finish();  // nothing adds to it any more
}

bool PoolCore::handle_events() {
  std::vector<PoolWatch::Event> events = watch_.take_events();
  bool started = false;
  for (PoolWatch::Event& e : events) {
    if (e.kind == PoolWatch::Event::Kind::zygote_ended) {
      on_zygote_lost();
      continue;
    }
    switch (e.report.op) {
      case ZygoteReport::Op::spawned:
        on_spawned(e.report.slot, e.report.pid, std::move(e.socket));
        started = true;
        break;
      case ZygoteReport::Op::exited: on_exited(e.report.slot, e.report.pid, e.report.status); break;
      case ZygoteReport::Op::spawn_failed: on_spawn_failed(e.report.slot, e.report.status); break;
    }
  }
  if (started) {
    // Tasks queued while only some workers had started (right after the
    // constructor, or during a respawn) are in those workers' rings: a new,
    // idle worker takes half of a busy one's unstarted tasks now, not only
    // once a result comes in (a blocked task may not return for long).
    std::lock_guard lock(lifecycle_.mutex());
    if (lifecycle_.phase_locked() != Lifecycle::Phase::terminated) table_.steal_for_idle_workers_locked();
  }
  return !events.empty();
}

void PoolCore::on_spawned(int index, pid_t pid, UniqueFd socket) {
  std::lock_guard lock(lifecycle_.mutex());
  table_.started_locked(index, pid, std::move(socket));
  first_start_answered_locked(index);
  start_failures_.forked();
  if (trace_ && index >= 0 && index < processes_) trace_->worker_started(index, pid, PoolWatch::now_ns());
}

void PoolCore::on_exited(int index, pid_t pid, int status) {
  if (index < 0 || index >= processes_) return;
  {
    std::lock_guard lock(lifecycle_.mutex());
    const WorkerSlot& slot = table_.slot(index);
    if (slot.state != WorkerSlot::State::running || slot.pid != pid) return;
  }
  // Results it published before dying are good: take them first.
  while (drainer_.drain_results(index)) {
  }
  WorkerDeath death{pid, status, {}};
  // Its crash's stack, named here, outside the pool mutex, if a task is lost with it.
  SlotControl& shared = region_.slot(index);
  const auto frames = take_crash_frames(shared.crash, pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (!frames.empty() && shared.running_task.load(std::memory_order_acquire) != 0) death.backtrace = symbolize(frames);
  std::vector<std::pair<PoolTask, std::exception_ptr>> failed;
  std::string broken;  // why the pool gives up on its workers ("": it does not)
  std::uint64_t running = 0;  // the task it died running (0: none)
  std::int64_t started_ns = 0;
  {
    std::lock_guard lock(lifecycle_.mutex());
    if (const auto error = take_initializer_error(region_.slot(index), status)) {
      broken = start_failures_.initializer_failed(*error, region_.pool().workers_initialized.load());
    }
    running = region_.slot(index).running_task.load(std::memory_order_acquire);
    started_ns = region_.slot(index).started_ns.load(std::memory_order_relaxed);
    failed = table_.exited_locked(index, death, watch_.take_timed_out(index));
    if (broken.empty() && table_.worker_needed_locked(lifecycle_.phase_locked())) {
      table_.slot(index).state = WorkerSlot::State::starting;
      zygote_->request({ZygoteRequest::Op::spawn, index, 0, 0});
      stats_.worker_replaced_locked();
    }
  }
  if (trace_) {
    const std::int64_t now = PoolWatch::now_ns();
    for (const auto& [task, error] : failed) {
      if (task.id == running && task.submitted_ns != 0) trace_->task(task.id, pid, task.submitted_ns, started_ns, now, true);
    }
    trace_->worker_ended(index, pid, status, now);
  }
  for (auto& [task, error] : failed) {
    if (task.state->fail(error)) stats_.failed();
  }
  if (!broken.empty()) lifecycle_.break_pool(broken);  // we hold the drain lock, its outer lock
}

void PoolCore::on_spawn_failed(int index, int error) {
  // Out of fds or processes for now, most likely: ask again later, and keep
  // the pool's tasks waiting meanwhile, unless no worker could start for long.
  std::string broken;
  {
    std::lock_guard lock(lifecycle_.mutex());
    const std::int64_t now = PoolWatch::now_ns();
    if (const std::int64_t when = table_.spawn_failed_locked(index, now); when != 0) watch_.retry_at_locked(when);
    first_start_answered_locked(index);
    broken = start_failures_.fork_failed(error, now, !table_.worker_pids_locked().empty());
  }
  if (!broken.empty()) lifecycle_.break_pool(broken);  // we hold the drain lock, its outer lock
}

void PoolCore::on_zygote_lost() {
  // Without the zygote no worker can be started again: fail what is left.
  std::vector<PoolTask> lost;
  {
    std::lock_guard lock(lifecycle_.mutex());
    table_.take_all_locked(lost, true);
    lifecycle_.close_locked();
    for (int i = 0; i < processes_; ++i) first_start_answered_locked(i);
  }
  started_changed_.notify_all();  // closed: worker_pids() throws
  stop_limiting();
  const auto error = std::make_exception_ptr(WorkerLost("procpool: the pool's zygote process died; no worker is left"));
  for (PoolTask& t : lost) {
    if (t.state->fail(error)) stats_.failed();
  }
}

}  // namespace procpool::detail
