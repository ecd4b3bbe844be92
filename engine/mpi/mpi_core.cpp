#include "engine/mpi/mpi_core.hpp"

#include <string>

#include "engine/executor/attachments.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/sys/constants.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

using procpool::detail::inline_payload_limit;

MpiCore::MpiCore(std::shared_ptr<Manager> manager)
    : manager_(std::move(manager)), workers_(manager_->workers()), id_(manager_->new_pool_id()) {}

std::shared_ptr<MpiCore> MpiCore::create(std::shared_ptr<Manager> manager) {
  auto core = std::make_shared<MpiCore>(std::move(manager));
  core->set_result_source(core);
  return core;
}

void MpiCore::submit(const char* call, std::shared_ptr<ResultStateBase> state,
                     procpool::detail::FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& /*options*/) {
  lifecycle_.check_running(call);
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
  task.blocks = blocks.take();
  task.header = layout(out.size() - sizeof blank, inline_payload_limit, manager_->max_message());
  task.header.pool_id = id_;
  task.state = std::move(state);
  task.ledger = ledger_;
  if (out.storage() == OutputBuffer::Storage::spilled) {
    const std::size_t size = out.size();
    task.mapped = std::make_unique<procpool::detail::SideChannelPayload>(spill.release(out), size);
    task.message.resize(sizeof blank);
  } else {
    task.message.assign(out.data(), out.data() + out.size());
  }
  {
    std::lock_guard lock(lifecycle_.mutex());
    lifecycle_.check_running_locked(call);
    ledger_->opened();
  }
  manager_->submit(std::move(task));
}

bool MpiCore::cancel(procpool::detail::ResultStateBase& /*state*/) { return false; }  // TODO(issue 14)

void MpiCore::stop_now(const std::exception_ptr& error) noexcept { manager_->cancel(id_, error); }

void MpiCore::runtime_ending() noexcept {
  lifecycle_.terminate_if_running(
      std::make_exception_ptr(PoolTerminated("procpool::mpi::Runtime: MPI ended before the task finished")));
}

}  // namespace procpool::mpi::detail
