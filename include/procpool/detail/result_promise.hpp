// A coroutine that returns an AsyncResult<T>: its co_return completes the
// result, an exception escaping it fails the result.
#pragma once

#include <coroutine>
#include <exception>
#include <memory>
#include <utility>

#include "procpool/detail/result_state.hpp"

namespace procpool {
template <class T>
class AsyncResult;
}  // namespace procpool

namespace procpool::detail {

template <class T>
class ResultPromiseBase {
 public:
  AsyncResult<T> get_return_object() { return AsyncResult<T>(state_); }
  // Runs at once, on the calling thread, up to its first co_await that suspends.
  std::suspend_never initial_suspend() const noexcept { return {}; }
  // The frame goes when the body ends; the outcome lives in the state.
  std::suspend_never final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { state_->fail(std::current_exception()); }

 protected:
  std::shared_ptr<ResultState<T>> state_ = std::make_shared<ResultState<T>>();
};

template <class T>
class ResultPromise : public ResultPromiseBase<T> {
 public:
  void return_value(T value) { this->state_->set_value(std::move(value)); }
};

template <>
class ResultPromise<void> : public ResultPromiseBase<void> {
 public:
  void return_void() { state_->set_value(); }
};

}  // namespace procpool::detail
