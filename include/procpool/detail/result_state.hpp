// The shared state behind an AsyncResult: written once by the pool, read by any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/types.h>
#include <vector>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/wire_archive.hpp"

namespace procpool::detail {

// The pool that completes a state, which a waiter may pump; defined by the
// engine (engine/executor/result_source.hpp).
class ResultSource;

// Completion, waiting and callbacks, independent of the value type.
class ResultStateBase {
 public:
  ResultStateBase() = default;
  ResultStateBase(const ResultStateBase&) = delete;
  ResultStateBase& operator=(const ResultStateBase&) = delete;
  virtual ~ResultStateBase();

  bool ready() const noexcept { return done_.load(std::memory_order_acquire) != 0; }
  void wait() const noexcept;
  // Returns whether the state is ready; waits at most `timeout`.
  bool wait_for(std::chrono::nanoseconds timeout) const noexcept;

  // Reads the value from a result frame sent by `worker_pid` and completes.
  // Throws (and stays pending) if the bytes do not deserialize.
  virtual void deliver(InputBuffer& in, pid_t worker_pid) = 0;
  // Completes with an error. Does nothing if already complete.
  void fail(std::exception_ptr error) noexcept;

  // Runs `callback` once when complete: at once, on this thread, if already so.
  void on_complete(std::function<void()> callback);

  // Valid once ready().
  const std::exception_ptr& error() const noexcept { return error_; }

  // The pool that will complete this state, for waiters to pump.
  void set_source(std::weak_ptr<ResultSource> source) noexcept { source_ = std::move(source); }

 protected:
  // Publishes the outcome and runs the callbacks; called exactly once.
  void complete() noexcept;
  // Called by complete() once the outcome is set, before any waiter or
  // callback sees it: lets a part (a chunk of a map) report to its whole.
  virtual void completed() noexcept {}

 private:
  std::atomic<std::uint32_t> done_{0};
  mutable std::atomic<std::uint32_t> waiters_{0};
  std::mutex callbacks_mutex_;
  std::vector<std::function<void()>> callbacks_;
  std::exception_ptr error_;
  std::weak_ptr<ResultSource> source_;
};

template <class T>
class ResultState final : public ResultStateBase {
 public:
  void deliver(InputBuffer& in, pid_t) override {
    T value{};
    {
      WireInputArchive archive(in);
      archive(value);
    }
    value_.emplace(std::move(value));
    complete();
  }
  // Completes with `value` (for results assembled in the parent, like map's).
  void set_value(T value) {
    value_.emplace(std::move(value));
    complete();
  }
  // Valid once ready() and error() is null.
  const T& value() const noexcept { return *value_; }
  // Moves the value out, for a holder that knows nobody else will read it.
  T take_value() { return std::move(*value_); }

 private:
  std::optional<T> value_;
};

template <>
class ResultState<void> final : public ResultStateBase {
 public:
  void deliver(InputBuffer&, pid_t) override { complete(); }
  void set_value() { complete(); }
};

}  // namespace procpool::detail
