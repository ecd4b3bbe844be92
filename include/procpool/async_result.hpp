/// \file
/// procpool::AsyncResult<T>: the future of one task (Python's AsyncResult).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "procpool/detail/continuation.hpp"
#include "procpool/detail/result_awaiter.hpp"
#include "procpool/detail/result_promise.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/errors.hpp"
#include "procpool/progress.hpp"

namespace procpool {

class TaskPool;
template <class T>
class AsyncResult;

namespace detail {
// The state behind an AsyncResult, for procpool's own templates.
struct StateAccess {
  template <class T>
  static const std::shared_ptr<ResultState<T>>& state(const AsyncResult<T>& result) {
    return result.checked_state();
  }
  template <class T>
  static bool bound(const AsyncResult<T>& result) noexcept {
    return result.state_ != nullptr;
  }
};

}  // namespace detail

/// The outcome of a task submitted with Pool::apply_async (or map_async): a
/// value of type T, or the error the task ended with. Movable and copyable
/// (copies share one state); it may outlive its pool and then holds its final
/// state. get() may be called any number of times. All members are
/// thread-safe: several threads may wait on one result.
template <class T>
class AsyncResult {
 public:
  /// The task's result type (void for a task that returns nothing).
  using value_type = T;
  /// The value callback of then(): void(const T&), or void() for AsyncResult<void>.
  using Callback = typename detail::value_callback<T>::type;
  /// Makes AsyncResult<T> a coroutine's return type: the coroutine runs at
  /// once on the calling thread until its first co_await that suspends, and
  /// its co_return completes the result (an exception escaping it fails the
  /// result with that exception). cancel() on such a result fails it with
  /// Cancelled; the coroutine goes on, its outcome ignored.
  using promise_type = detail::ResultPromise<T>;

  /// An empty result, not bound to any task: every member but ready() throws
  /// ValueError. Never blocks or throws.
  AsyncResult() = default;
  /// The result behind `state`: the pools build results this way, user code
  /// has no use for it. Never blocks or throws.
  explicit AsyncResult(std::shared_ptr<detail::ResultState<T>> state) : state_(std::move(state)) {}

  /// Blocks until the task has finished, then returns its value or throws its
  /// error: the standard exception it threw, RemoteError, WorkerLost,
  /// TaskTimeout, SerializationError, PoolTerminated, Cancelled or BrokenPool. While it waits, the
  /// calling thread takes results off the pool's rings itself. Throws
  /// ValueError if the result is empty. Thread-safe.
  T get() const& {
    checked().wait();
    return outcome();
  }
  /// As get(), on a result about to go away (`pool.apply_async(f, x).get()`,
  /// or `std::move(r).get()`): if no copy of this AsyncResult shares its
  /// state, the value is moved out rather than copied, which for a large
  /// value saves a copy and its memory; the result is then empty. Otherwise
  /// as get(). Thread-safe.
  T get() && {
    checked().wait();
    if constexpr (!std::is_void_v<T>) {
      if (state_.use_count() == 1 && !state_->error()) {
        auto state = std::move(state_);
        return state->take_value();
      }
    }
    return outcome();
  }
  /// As get(), but throws TimeoutError if the task has not finished within
  /// `timeout`; the task goes on. Blocks at most about `timeout`. Thread-safe.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    if (!checked().wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout))) {
      throw TimeoutError("procpool::AsyncResult::get: timed out after " +
                         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count()) +
                         " us");
    }
    return outcome();
  }
  /// Blocks until the task has finished. Never throws the task's error;
  /// throws ValueError if the result is empty. Thread-safe.
  void wait() const { checked().wait(); }
  /// Blocks at most `timeout`; returns whether the task has finished. Never
  /// throws the task's error; throws ValueError if the result is empty.
  /// Thread-safe.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return checked().wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  /// Whether the task has finished, with a value or an error (false for an
  /// empty result). Never blocks or throws. Thread-safe.
  bool ready() const noexcept { return state_ && state_->ready(); }
  /// Whether the task finished without error. Never blocks. Throws ValueError
  /// if not ready (or empty). Thread-safe.
  bool successful() const {
    if (!ready()) throw ValueError("procpool::AsyncResult::successful: result is not ready");
    return !state_->error();
  }
  /// Cancels the task. If it has not started, it never runs. If it is
  /// running, procpool::this_task::stop_requested() becomes true in it (and
  /// its this_task::stop_token() stops), and if it has not finished
  /// PoolOptions::cancel_grace later its worker is killed and replaced.
  /// Either way the result fails with Cancelled at once: waiters wake, and
  /// error callbacks run on the thread calling cancel(), before it returns;
  /// cancel() returns true. A result the task still sends is dropped; a
  /// cancelled task is never retried. If the task had already finished (its
  /// outcome is set), nothing changes and it returns false. On a map_async /
  /// starmap_async result it cancels every chunk (true if any was
  /// cancelled). On a procpool::mpi::Pool a task not started on its rank
  /// never runs, and a running one runs to its end there, unasked, its result
  /// dropped (see procpool::mpi::Pool).
  /// Cost on a procpool::Pool: the pool's locks, briefly; a task still in a
  /// worker's ring costs a walk over that ring (at most 1024 tasks), one in
  /// the pool's queue nothing more (it is dropped when its turn comes).
  /// Never blocks on the task; throws ValueError if the result is empty.
  /// Thread-safe.
  bool cancel() const { return checked().cancel(); }
  /// Calls `callback` with the value, or `error_callback` with the error, once:
  /// on the pool's result-handling thread, or at once on this thread if the
  /// task has already finished (a result failed by terminate() calls it on
  /// the thread in terminate(), one failed by cancel() on the thread in
  /// cancel()). Exceptions thrown by a callback are reported on stderr and
  /// otherwise ignored. Never blocks on the task. Throws ValueError if the
  /// result is empty. Thread-safe.
  void then(Callback callback, std::function<void(std::exception_ptr)> error_callback) const {
    auto state = checked_state();
    state->on_complete([state, callback = std::move(callback), error_callback = std::move(error_callback)] {
      if (state->error()) {
        if (error_callback) error_callback(state->error());
      } else if (callback) {
        if constexpr (std::is_void_v<T>) {
          callback();
        } else {
          callback(state->value());
        }
      }
    });
  }
  /// A continuation: returns the future of `callback(value)` (`callback()`
  /// for an `AsyncResult<void>`), an `AsyncResult<U>`, `U` what the callback
  /// returns. If this result fails, the returned one fails with the same
  /// error and the callback does not run; if the callback throws, the
  /// returned one fails with what it threw. A callback that returns an
  /// `AsyncResult<V>` (say, it submits another task) gives an
  /// `AsyncResult<V>` that completes with that task: chains of tasks need no
  /// nesting. The callback runs once, in this process, on the thread the
  /// two-callback form above names; it may capture anything. Cancelling the
  /// returned result only keeps the callback from running (this result goes
  /// on).
  /// Never blocks; throws ValueError if the result is empty. Thread-safe.
  template <class F>
    requires detail::Continuation<F, T>
  auto then(F callback) const -> AsyncResult<detail::unwrapped_t<detail::continuation_result_t<F, T>>> {
    using U = detail::continuation_result_t<F, T>;
    using V = detail::unwrapped_t<U>;
    auto source = checked_state();
    auto next = std::make_shared<detail::ResultState<V>>();
    next->follow_source(*source);
    source->on_complete([source, next, callback = std::move(callback)]() mutable {
      if (source->error()) {
        next->fail(source->error());
        return;
      }
      if (next->ready()) return;  // cancelled
      try {
        if constexpr (detail::is_async_result_v<U>) {
          U inner = call(callback, *source);
          detail::forward_outcome(detail::StateAccess::state(inner), next);
        } else if constexpr (std::is_void_v<U>) {
          call(callback, *source);
          next->set_value();
        } else {
          next->set_value(call(callback, *source));
        }
      } catch (...) {
        next->fail(std::current_exception());
      }
    });
    return AsyncResult<V>(std::move(next));
  }

  /// `co_await result` in any C++20 coroutine: suspends until the task has
  /// finished (not at all if it has), then gives its value or throws its
  /// error, as get() would. The coroutine resumes on the thread that
  /// completes the result: the pool's result-handling thread (on a
  /// procpool::mpi::Pool its callback thread), or the thread calling
  /// cancel() or terminate() on it. Code there should not block (wait with
  /// co_await, not get()). Throws ValueError if the result is empty.
  auto operator co_await() const& { return detail::ResultAwaiter<T>{checked_state()}; }
  /// As above; the value of a result no one else holds is moved out.
  auto operator co_await() && {
    checked_state();
    return detail::ResultAwaiter<T>{std::move(state_)};
  }
  /// How far the task has got. For a result of map_async or starmap_async:
  /// {items whose chunk has finished (with a value or an error), items in
  /// all}: it moves a chunk at a time, and is {total, total} once the map has
  /// succeeded (an empty input gives {0, 0}). For any other result: {0, 1},
  /// then {1, 1} once ready. Never blocks; throws ValueError if the result is
  /// empty. Thread-safe.
  Progress progress() const { return checked().progress(); }

 private:
  friend class TaskPool;
  friend struct detail::StateAccess;

  template <class F>
  static decltype(auto) call(F& callback, const detail::ResultState<T>& state) {
    if constexpr (std::is_void_v<T>) {
      return callback();
    } else {
      return callback(state.value());
    }
  }
  // get() for a result no one else can see (map's own): moves the value out
  // instead of copying it, which for a million items is most of map's time.
  T take() {
    checked().wait();
    if (state_->error()) std::rethrow_exception(state_->error());
    if constexpr (!std::is_void_v<T>) return state_->take_value();
  }

  const std::shared_ptr<detail::ResultState<T>>& checked_state() const {
    if (!state_) throw ValueError("procpool::AsyncResult: empty result (default-constructed or moved from)");
    return state_;
  }
  detail::ResultState<T>& checked() const { return *checked_state(); }
  T outcome() const {
    if (state_->error()) std::rethrow_exception(state_->error());
    if constexpr (!std::is_void_v<T>) return state_->value();
  }

  std::shared_ptr<detail::ResultState<T>> state_;
};

}  // namespace procpool
