// The shared state behind an AsyncResult: written once by the pool, read by any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <sys/types.h>
#include <type_traits>
#include <vector>

#include <cereal/details/traits.hpp>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/wire_archive.hpp"
#include "procpool/progress.hpp"

namespace procpool::detail {

// The pool that completes a state, which a waiter may pump; defined by the
// engine (engine/executor/result_source.hpp).
class ResultSource;
// A pool's PoolOptions::max_pending count (engine/executor/pending_limit.hpp).
class PendingLimit;

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

  // Reads the value from a result frame sent by `worker_pid` and completes,
  // unless something else completed it first (a cancel()). Throws (and
  // stays pending) if the bytes do not deserialize.
  virtual void deliver(InputBuffer& in, pid_t worker_pid) = 0;
  // Completes with an error. Does nothing if already complete (or being
  // completed); returns whether this call completed it. Any thread.
  bool fail(std::exception_ptr error) noexcept;

  // AsyncResult::cancel(): false if already complete; else cancels the parts
  // (a map's chunks) or asks the pool to cancel the task, and fails with
  // Cancelled. A state no pool has queued (task_id() 0: a then() or
  // when_all() result, a task still waiting for its arguments) just fails.
  // Thread-safe.
  bool cancel();
  // As cancel(), but only if the task has not started (nor a part of it):
  // a running task is left alone. For an abandoned imap. Thread-safe.
  bool cancel_unstarted();
  // For a whole made of parts (map_async): cancel() cancels each of them.
  // Before the whole is shared (a user's cancel() may read them after).
  void set_parts(std::vector<std::weak_ptr<ResultStateBase>> parts) { whole().parts = std::move(parts); }
  // The engine's name for the task behind this state (0: none yet), so that
  // cancel() can find it.
  void set_task_id(std::uint64_t id) noexcept { task_id_.store(id, std::memory_order_release); }
  std::uint64_t task_id() const noexcept { return task_id_.load(std::memory_order_acquire); }

  // Runs `callback` once when complete: at once, on this thread, if already so.
  // Callbacks a callback's completions trigger run nested, but past a
  // small depth (a then() chain thousands of links long) they run after the
  // outermost callback returns, on the same thread: the stack stays shallow.
  void on_complete(std::function<void()> callback);

  // Valid once ready().
  const std::exception_ptr& error() const noexcept { return error_; }

  // The pool that will complete this state, for waiters to pump.
  // Naming the source it has already does not write: a state attached before
  // it was queued (a task waiting for its arguments) may have waiters
  // reading it meanwhile.
  void set_source(std::weak_ptr<ResultSource> source) noexcept {
    if (!source_.owner_before(source) && !source.owner_before(source_)) return;
    source_ = std::move(source);
  }
  // A state completed from another's callback (then(), when_all()) pumps
  // the pool of the one it follows.
  void follow_source(const ResultStateBase& other) noexcept { source_ = other.source_; }
  // Before the task is queued: it holds a place of `limit` until it
  // completes (complete() gives it back).
  void hold_place(std::shared_ptr<PendingLimit> limit) noexcept { place_ = std::move(limit); }
  // The task was not queued after all: gives its place back now.
  void give_place_back() noexcept;

  // A map family's whole counts items for AsyncResult::progress(): `total`
  // once known (0 until then), and each chunk adds its items as it finishes
  // (one relaxed add per chunk, before the whole can complete). The first
  // count_items() comes before the whole is shared or any part queued.
  void count_items(std::size_t total) { whole().items_total.store(total, std::memory_order_relaxed); }
  void add_items_done(std::size_t items) noexcept { whole_->items_done.fetch_add(items, std::memory_order_relaxed); }
  // {done, total} items of a whole that counts them; else {0, 1}, then {1, 1} once ready.
  Progress progress() const noexcept {
    const bool finished = ready();  // acquire: once ready, every chunk's count is in
    if (!whole_) return {finished ? std::size_t{1} : std::size_t{0}, 1};
    return {whole_->items_done.load(std::memory_order_relaxed), whole_->items_total.load(std::memory_order_relaxed)};
  }

 protected:
  // The right to set the outcome: true for exactly one caller. Every path
  // that completes (deliver, set_value, fail) takes it first.
  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }
  // Publishes the outcome and runs the callbacks; called once, after claim().
  void complete() noexcept;
  // Called by complete() once the outcome is set, before any waiter or
  // callback sees it: lets a part (a chunk of a map) report to its whole.
  virtual void completed() noexcept {}

 private:
  // What only a whole made of parts (a map family's result) has.
  struct Whole {
    std::vector<std::weak_ptr<ResultStateBase>> parts;
    std::atomic<std::size_t> items_total{0};
    std::atomic<std::size_t> items_done{0};
  };
  Whole& whole() {
    if (!whole_) whole_ = std::make_unique<Whole>();
    return *whole_;
  }
  // callbacks_ is guarded by a four-byte lock (result_state.cpp), not a
  // std::mutex: a batch of a million tasks holds a million states, so every
  // byte here counts (fresh memory is what a big batch mostly pays for).
  void lock_callbacks() noexcept;
  void unlock_callbacks() noexcept;

  // Small fields first, packed; the layout keeps ResultState<int> at 112 bytes.
  std::atomic<bool> claimed_{false};
  std::atomic<std::uint32_t> done_{0};
  std::atomic<std::uint64_t> task_id_{0};
  mutable std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint32_t> callbacks_lock_{0};  // 0 free, 1 held, 2 held with sleepers
  std::vector<std::function<void()>> callbacks_;
  std::exception_ptr error_;
  std::weak_ptr<ResultSource> source_;
  std::shared_ptr<PendingLimit> place_;  // null unless the pool has a max_pending
  std::unique_ptr<Whole> whole_;         // null unless a map family's whole
};

template <class T>
class ResultState final : public ResultStateBase {
 public:
  using value_type = T;
  void deliver(InputBuffer& in, pid_t) override {
    // A value made in this process (then(), when_all()) need not travel.
    if constexpr (std::is_default_constructible_v<T> &&
                  cereal::traits::is_input_serializable<T, WireInputArchive>::value) {
      T value{};
      {
        WireInputArchive archive(in);
        archive(value);
      }
      if (!claim()) return;
      value_.emplace(std::move(value));
      complete();
    }
  }
  // Completes with `value` (for results assembled in the parent, like map's),
  // unless already complete.
  void set_value(T value) {
    if (!claim()) return;
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
  using value_type = void;
  void deliver(InputBuffer&, pid_t) override {
    if (claim()) complete();
  }
  void set_value() {
    if (claim()) complete();
  }
};

}  // namespace procpool::detail
