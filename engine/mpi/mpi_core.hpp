// The engine behind procpool::mpi::Pool: TaskPool's Executor over rank 0's
// manager. It encodes tasks as the local pool does and keeps the pool's
// lifecycle; the manager moves them to the worker ranks and back.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/mpi/manager.hpp"
#include "procpool/detail/executor.hpp"

namespace procpool::mpi::detail {

using procpool::detail::OutputBuffer;

class MpiCore final : public procpool::detail::Executor,
                      public procpool::detail::ResultSource,
                      private procpool::detail::LifecycleSteps {
 public:
  static std::shared_ptr<MpiCore> create(std::shared_ptr<Manager> manager);
  explicit MpiCore(std::shared_ptr<Manager> manager);

  const char* display_name() const noexcept override { return lifecycle_.display_name(); }
  void submit(const char* call, std::shared_ptr<ResultStateBase> state,
              procpool::detail::FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) override {
    queue(call, std::move(state), encode, options, false);
  }
  void check_running(const char* call) const override { lifecycle_.check_running(call); }
  void defer(const char* call) override { lifecycle_.defer(call); }
  void submit_deferred(const char* call, std::shared_ptr<ResultStateBase> state,
                       procpool::detail::FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) override {
    queue(call, std::move(state), encode, options, true);
  }
  void undefer() noexcept override { lifecycle_.undefer(); }
  // Shared values go to the ranks by the manager (SharedArray fails in submit).
  void check_shares(const char* call) const override { check_running(call); }
  int processes() const noexcept override { return workers_; }
  void close() override { lifecycle_.close(); }
  void join() override { lifecycle_.join(); }
  void terminate() override { lifecycle_.terminate(); }
  void finish() noexcept override { lifecycle_.finish(); }
  int size() const override { return workers_; }

  // Results arrive through the manager thread: a waiter has nothing to pump.
  bool pump() noexcept override { return false; }
  void begin_pumping() noexcept override {}
  void end_pumping() noexcept override {}
  bool cancel(procpool::detail::ResultStateBase& state) override;
  // A dropped imap's chunks: cancel() keeps those not started on a rank from
  // running; the running ones' results were to be dropped anyway.
  bool cancel_unstarted(procpool::detail::ResultStateBase& state) override { return cancel(state); }

  // The Runtime is ending: a pool still running is terminated (a closed
  // one's tasks still run: the manager answers them all before it stops).
  void runtime_ending() noexcept;

 private:
  // LifecycleSteps: the manager holds the queue, so terminating is one
  // cancel, and joining waits for this pool's open tasks.
  void before_closing() noexcept override { flush_inputs(); }
  void stop_now(const std::exception_ptr& error) noexcept override;
  void wait_stopped() noexcept override {
    lifecycle_.wait_deferred();
    ledger_->wait_until_empty();
  }
  // submit(), or submit_deferred() if `deferred`.
  void queue(const char* call, std::shared_ptr<ResultStateBase> state,
             procpool::detail::FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options, bool deferred);

  std::shared_ptr<Manager> manager_;
  const int workers_;
  const std::uint64_t id_;
  // Counts this pool's open tasks; opened under lifecycle_.mutex(), so none
  // opens once the pool has stopped taking tasks.
  std::shared_ptr<Ledger> ledger_ = std::make_shared<Ledger>();
  procpool::detail::Lifecycle lifecycle_{"procpool::mpi::Pool", *this};
};

}  // namespace procpool::mpi::detail
