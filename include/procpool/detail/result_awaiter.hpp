// What `co_await result` does: suspend until the state completes, then give
// its value or throw its error.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

#include "procpool/detail/result_state.hpp"

namespace procpool::detail {

template <class T>
struct ResultAwaiter {
  std::shared_ptr<ResultState<T>> state;

  bool await_ready() const noexcept { return state->ready(); }

  // Suspends unless the state completed meanwhile. Whichever of this call
  // and the completion callback comes second resumes the coroutine: here,
  // by not suspending; there, by resuming it.
  bool await_suspend(std::coroutine_handle<> coroutine) {
    auto second = std::make_shared<std::atomic<bool>>(false);
    state->on_complete([coroutine, second] {
      if (second->exchange(true, std::memory_order_acq_rel)) coroutine.resume();
    });
    return !second->exchange(true, std::memory_order_acq_rel);
  }

  T await_resume() {
    if (state->error()) std::rethrow_exception(state->error());
    if constexpr (!std::is_void_v<T>) {
      // Nobody else holds it (`co_await pool.apply_async(...)`): move the value out.
      if (state.use_count() == 1) return state->take_value();
      return state->value();
    }
  }
};

// Completes `to` with `from`'s outcome once `from` completes.
template <class T>
void forward_outcome(const std::shared_ptr<ResultState<T>>& from, const std::shared_ptr<ResultState<T>>& to) {
  from->on_complete([from, to] {
    if (from->error()) {
      to->fail(from->error());
    } else if constexpr (std::is_void_v<T>) {
      to->set_value();
    } else {
      to->set_value(from->value());
    }
  });
}

}  // namespace procpool::detail
