// The engine behind procpool::mpi::Pool: TaskPool's Executor over rank 0's
// manager. It encodes tasks as the local pool does and keeps the pool's phase;
// the manager moves them to the worker ranks and back.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/mpi/manager.hpp"
#include "procpool/detail/executor.hpp"

namespace procpool::mpi::detail {

using procpool::detail::OutputBuffer;

class MpiCore final : public procpool::detail::Executor {
 public:
  explicit MpiCore(std::shared_ptr<Manager> manager);

  void submit(const char* call, std::shared_ptr<ResultStateBase> state,
              procpool::detail::FunctionRef<void(OutputBuffer&)> encode) override;
  void check_running(const char* call) const override;
  // Shared values go to the ranks by the manager (SharedArray fails in submit).
  void check_shares(const char* call) const override { check_running(call); }
  int processes() const noexcept override { return workers_; }
  void close() override;
  void join() override;
  void terminate() override;
  void finish() noexcept override;
  int size() const override { return workers_; }

  // Results arrive through the manager thread: a waiter has nothing to pump.
  bool pump() noexcept override { return false; }
  void begin_pumping() noexcept override {}
  void end_pumping() noexcept override {}

  // The Runtime is ending: a pool still running is terminated.
  void runtime_ending() noexcept;

 private:
  enum class Phase { running, closing, terminated };

  void check_running_locked(const char* call) const;

  std::shared_ptr<Manager> manager_;
  const int workers_;
  const std::uint64_t id_;
  std::shared_ptr<Ledger> ledger_ = std::make_shared<Ledger>();

  mutable std::mutex mutex_;
  Phase phase_ = Phase::running;
};

}  // namespace procpool::mpi::detail
