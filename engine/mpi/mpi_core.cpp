#include "engine/mpi/mpi_core.hpp"

#include <string>

#include "engine/executor/attachments.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// Payloads up to this size are copied into their message; larger ones spill
// to a memfd while they are encoded and go in pieces straight from it.
constexpr std::size_t inline_limit = std::size_t{1} << 20;

}  // namespace

MpiCore::MpiCore(std::shared_ptr<Manager> manager)
    : manager_(std::move(manager)), workers_(manager_->workers()), id_(manager_->new_pool_id()) {}

void MpiCore::check_running(const char* call) const {
  std::lock_guard lock(mutex_);
  check_running_locked(call);
}

void MpiCore::check_running_locked(const char* call) const {
  if (phase_ != Phase::running) {
    throw ValueError(std::string("procpool::mpi::Pool::") + call + ": pool is " +
                     (phase_ == Phase::closing ? "closed" : "terminated"));
  }
}

void MpiCore::submit(const char* call, std::shared_ptr<ResultStateBase> state,
                     procpool::detail::FunctionRef<void(OutputBuffer&)> encode) {
  check_running(call);
  // Room for the header first, so a small task is one buffer to copy and send.
  thread_local OutputBuffer out;
  out.reset(nullptr, 0, inline_limit);
  const MessageHeader blank;
  const auto with_header = [&](OutputBuffer& o) {
    o.write(&blank, sizeof blank);
    encode(o);
  };
  // Collects the Shared values the task's handles name; a rank cannot map a SharedArray.
  procpool::detail::AttachmentScope blocks(false);
  if (!serialize_or_fail("procpool::mpi::Pool::", call, *state, with_header, out)) return;
  Task task;
  task.blocks = blocks.take();
  task.header = layout(out.size() - sizeof blank, inline_limit, manager_->max_message());
  task.header.pool_id = id_;
  task.state = std::move(state);
  task.ledger = ledger_;
  if (out.storage() == OutputBuffer::Storage::memfd) {
    const std::size_t size = out.size();
    task.mapped = std::make_unique<procpool::detail::SideChannelPayload>(
        procpool::detail::UniqueFd(out.release_memfd()), size);
    task.message.resize(sizeof blank);
  } else {
    task.message.assign(out.data(), out.data() + out.size());
  }
  {
    std::lock_guard lock(mutex_);
    check_running_locked(call);
    ledger_->opened();
  }
  manager_->submit(std::move(task));
}

void MpiCore::close() {
  check_running("close");
  flush_inputs();
  std::lock_guard lock(mutex_);
  check_running_locked("close");
  phase_ = Phase::closing;
}

void MpiCore::join() {
  {
    std::lock_guard lock(mutex_);
    if (phase_ == Phase::running) {
      throw ValueError("procpool::mpi::Pool::join: pool is still running; call close() or terminate() first");
    }
  }
  ledger_->wait_until_empty();
}

void MpiCore::terminate() {
  {
    std::lock_guard lock(mutex_);
    check_running_locked("terminate");
    phase_ = Phase::terminated;
  }
  manager_->cancel(id_, std::make_exception_ptr(PoolTerminated(
                            "procpool::mpi::Pool::terminate: the pool was terminated before the task finished")));
}

void MpiCore::finish() noexcept {
  try {
    bool running = false;
    {
      std::lock_guard lock(mutex_);
      running = phase_ == Phase::running;
    }
    if (running) close();
    join();
  } catch (...) {
    // Closed or terminated by another thread meanwhile: join() is all that is left.
    ledger_->wait_until_empty();
  }
}

void MpiCore::runtime_ending() noexcept {
  {
    std::lock_guard lock(mutex_);
    // A closed pool's tasks still run: the manager answers them all before it stops.
    if (phase_ != Phase::running) return;
    phase_ = Phase::terminated;
  }
  manager_->cancel(id_, std::make_exception_ptr(
                            PoolTerminated("procpool::mpi::Runtime: MPI ended before the task finished")));
}

}  // namespace procpool::mpi::detail
