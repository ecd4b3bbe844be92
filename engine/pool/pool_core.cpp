#include "engine/pool/pool_core.hpp"

#include <cstring>
#include <string>
#include <utility>

#include "engine/executor/attachments.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/process/current_process.hpp"
#include "engine/pool/worker.hpp"
#include "engine/ipc/arena_store.hpp"
#include "engine/sys/constants.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// Bytes per ring; a payload over a quarter of it goes to the payload arena.
constexpr std::size_t ring_capacity = std::size_t{256} << 10;

int checked_processes(const PoolOptions& options) {
  if (options.processes < 0) throw ValueError("procpool::Pool: processes must be at least 1");
  return options.processes == 0 ? cpu_count() : options.processes;
}

}  // namespace

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      processes_(checked_processes(options_)),
      region_(processes_, ring_capacity),
      arenas_(processes_, task_arena_bytes, result_arena_bytes),
      task_arena_(std::make_shared<ArenaAllocator>(arenas_.tasks(), payload_warm_bytes)),
      watch_(options_, region_, processes_),
      table_(region_, options_, watch_, processes_),
      drainer_(region_, arenas_, table_, watch_, lifecycle_) {
  // Everything the workers need is in this object, which the zygote inherits
  // as it is now (options_ included) and keeps unchanged.
  zygote_ = std::make_unique<Zygote>([this, creator = current_process()](int slot, UniqueFd socket, int number) {
    // Named as Python names them; daemonic, like Python's pool workers.
    become_child({"PoolWorker-" + std::to_string(number), 0, true}, creator);
    const WorkerConfig config{&region_, &arenas_, slot, &options_.initializer, options_.maxtasksperchild};
    run_worker(config, std::move(socket));
  });
  // Our zygote has them; the zygotes of pools built later must not keep them mapped.
  region_exclusion_.emplace(region_.address(), region_.size());
  arena_exclusion_.emplace(arenas_.mapping().data(), arenas_.mapping().size());
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
      watch_.push({PoolWatch::Event::Kind::report, report, std::move(socket)});
    }
  }
  table_.watch_released_blocks([this] { drainer_.signal(); });
  drainer_.start(*zygote_, [this] { return handle_events(); });
  watch_.start(*zygote_, table_, lifecycle_, [this] { drainer_.signal(); });
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

void PoolCore::submit(const char* call, std::shared_ptr<ResultStateBase> state,
                      FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) {
  // A first look without the lock, so a closed pool does not serialize the
  // task; the check that counts is the one under the lock below.
  if (!lifecycle_.accepting()) check_running(call);
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
    throw;
  }
  PoolTask task;
  if (encoded && out.storage() == OutputBuffer::Storage::spilled) {
    task.large_size = out.size();
    ArenaStore::Taken taken = spill.take(out);
    task.block = std::move(taken.block);
    task.memfd = std::move(taken.memfd);
  }
  if (!encoded) out.reset(nullptr, 0, 0);  // gives a half-written block back while the arena is mapped
  spill.use(nullptr);                       // the thread's store must not keep this pool's arena alive
  if (!encoded) return;
  state->set_source(result_source());
  task.state = std::move(state);
  task.blocks = blocks.take();
  task.options = options;
  std::lock_guard lock(lifecycle_.mutex());
  lifecycle_.check_running_locked(call);
  table_.queue_locked(std::move(task), out.data(), out.size());
}

int PoolCore::size() const {
  std::lock_guard lock(lifecycle_.mutex());
  lifecycle_.check_running_locked("size");
  return processes_;
}

std::vector<pid_t> PoolCore::worker_pids() const {
  std::lock_guard lock(lifecycle_.mutex());
  lifecycle_.check_running_locked("worker_pids");
  return table_.worker_pids_locked();
}

void PoolCore::stop_now(const std::exception_ptr& error) noexcept {
  // The zygote SIGKILLs the workers at once (not SIGTERM: a worker that
  // blocks or ignores signals cannot hold us up); join() reaps them.
  zygote_->request({ZygoteRequest::Op::shutdown, 0, 0, 0});
  for (PoolTask& t : terminated_tasks_) t.state->fail(error);
  terminated_tasks_.clear();
  drainer_.signal();
}

void PoolCore::wait_stopped() noexcept {
  drainer_.join_thread();
  zygote_->shutdown(shutdown_grace);
  drainer_.stop();
  watch_.stop();
}

bool PoolCore::handle_events() {
  std::vector<PoolWatch::Event> events = watch_.take_events();
  for (PoolWatch::Event& e : events) {
    if (e.kind == PoolWatch::Event::Kind::zygote_ended) {
      on_zygote_lost();
      continue;
    }
    switch (e.report.op) {
      case ZygoteReport::Op::spawned: on_spawned(e.report.slot, e.report.pid, std::move(e.socket)); break;
      case ZygoteReport::Op::exited: on_exited(e.report.slot, e.report.pid, e.report.status); break;
      case ZygoteReport::Op::spawn_failed: on_spawn_failed(e.report.slot); break;
    }
  }
  return !events.empty();
}

void PoolCore::on_spawned(int index, pid_t pid, UniqueFd socket) {
  std::lock_guard lock(lifecycle_.mutex());
  table_.started_locked(index, pid, std::move(socket));
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
  std::vector<std::pair<PoolTask, std::exception_ptr>> failed;
  {
    std::lock_guard lock(lifecycle_.mutex());
    failed = table_.exited_locked(index, pid, status, watch_.take_timed_out(index));
    if (table_.worker_needed_locked(lifecycle_.phase_locked())) {
      table_.slot(index).state = WorkerSlot::State::starting;
      zygote_->request({ZygoteRequest::Op::spawn, index, 0, 0});
    }
  }
  for (auto& [task, error] : failed) task.state->fail(error);
}

void PoolCore::on_spawn_failed(int index) {
  // Out of fds or processes for now, most likely: ask again later, and keep
  // the pool's tasks waiting meanwhile.
  std::lock_guard lock(lifecycle_.mutex());
  if (const std::int64_t when = table_.spawn_failed_locked(index, PoolWatch::now_ns()); when != 0) {
    watch_.retry_at_locked(when);
  }
}

void PoolCore::on_zygote_lost() {
  // Without the zygote no worker can be started again: fail what is left.
  std::vector<PoolTask> lost;
  {
    std::lock_guard lock(lifecycle_.mutex());
    table_.take_all_locked(lost, true);
    lifecycle_.close_locked();
  }
  const auto error = std::make_exception_ptr(WorkerLost("procpool: the pool's zygote process died; no worker is left"));
  for (PoolTask& t : lost) t.state->fail(error);
}

}  // namespace procpool::detail
