#include "engine/mpi/mpi_core.hpp"

#include <string>

#include "engine/executor/attachments.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/sys/constants.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

using procpool::detail::inline_payload_limit;

namespace {

// TaskOptions that cannot hold on a rank are refused, not ignored: a deadline
// silently dropped is worse than an error at submission.
void check_options(const char* call, const TaskOptions& options) {
  const auto refuse = [&](const std::string& why) {
    throw ValueError(std::string("procpool::mpi::Pool::") + call + ": " + why);
  };
  if (options.timeout.count() != 0) {
    refuse("TaskOptions::timeout does not apply on MPI (a task cannot be stopped on a rank without killing the "
           "rank, and Open MPI then ends the job)");
  }
  if (options.soft_timeout.count() != 0) {
    refuse("TaskOptions::soft_timeout does not apply on MPI (a task on a rank is never asked to stop)");
  }
  if (options.retries < 0) refuse("TaskOptions::retries must be at least 0");
}

}  // namespace

MpiCore::MpiCore(std::shared_ptr<Manager> manager)
    : manager_(std::move(manager)), workers_(manager_->workers()), id_(manager_->new_pool_id()) {}

std::shared_ptr<MpiCore> MpiCore::create(std::shared_ptr<Manager> manager) {
  auto core = std::make_shared<MpiCore>(std::move(manager));
  core->set_result_source(core);
  return core;
}

void MpiCore::queue(const char* call, std::shared_ptr<ResultStateBase> state,
                    procpool::detail::FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options,
                    bool deferred) {
  check_options(call, options);
  if (!deferred) lifecycle_.check_running(call);
  // Room for the header first, so a small task is one buffer to copy and send.
  thread_local procpool::detail::MemfdStore spill;
  thread_local OutputBuffer out(&spill);
  out.reset(nullptr, 0, inline_payload_limit);
  const MessageHeader blank;
  const auto with_header = [&](OutputBuffer& o) {
    o.write(&blank, sizeof blank);
    encode(o);
  };
  // Collects the Shared values the task's handles name; a rank cannot map a SharedArray.
  procpool::detail::AttachmentScope blocks(false);
  if (!serialize_or_fail(call, *state, with_header, out)) return;
  Task task;
  task.priority = options.priority;
  task.retries_left = options.retries;
  task.blocks = blocks.take();
  task.header = layout(out.size() - sizeof blank, inline_payload_limit, manager_->max_message());
  task.header.pool_id = id_;
  task.state = std::move(state);
  task.ledger = ledger_;
  attach(*task.state);  // AsyncResult::cancel() comes back here
  if (out.storage() == OutputBuffer::Storage::spilled) {
    const std::size_t size = out.size();
    task.mapped = std::make_unique<procpool::detail::SideChannelPayload>(spill.release(out), size);
    task.message.resize(sizeof blank);
  } else {
    task.message.assign(out.data(), out.data() + out.size());
  }
  {
    std::lock_guard lock(lifecycle_.mutex());
    lifecycle_.check_queueing_locked(call, deferred);
    ledger_->opened();
  }
  manager_->submit(std::move(task));
}

bool MpiCore::cancel(procpool::detail::ResultStateBase& state) {
  const std::uint64_t task_id = state.task_id();
  // 0: never queued (it failed at submission), so it is complete already.
  if (task_id == 0) return false;
  return manager_->cancel_task(task_id, procpool::detail::cancelled_error());
}

void MpiCore::stop_now(const std::exception_ptr& error) noexcept { manager_->cancel(id_, error); }

void MpiCore::runtime_ending() noexcept {
  lifecycle_.terminate_if_running(
      std::make_exception_ptr(PoolTerminated("procpool::mpi::Runtime: MPI ended before the task finished")));
}

}  // namespace procpool::mpi::detail
