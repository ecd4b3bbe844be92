// A task with an AsyncResult among its arguments: it waits, deferred by its
// pool, until every such argument is ready, then goes to the pool with
// their values, or fails with an argument's error without running.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "procpool/async_result.hpp"
#include "procpool/detail/executor.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/task_options.hpp"

namespace procpool::detail {

// The argument type the callable sees: T for an AsyncResult<T>.
template <class A>
struct dependency_value {
  using type = A;
};
template <class T>
struct dependency_value<AsyncResult<T>> {
  static_assert(!std::is_void_v<T>, "procpool: an AsyncResult<void> has no value to pass as a task argument");
  using type = T;
};
template <class A>
using dependency_value_t = typename dependency_value<std::decay_t<A>>::type;

template <class... Args>
inline constexpr bool has_dependency_v = (is_async_result_v<std::decay_t<Args>> || ...);

template <class A>
decltype(auto) dependency_argument(const A& arg) {
  if constexpr (is_async_result_v<A>) {
    return StateAccess::state(arg)->value();
  } else {
    return (arg);
  }
}

template <class F, class... Args>
class DependentTask : public std::enable_shared_from_this<DependentTask<F, Args...>> {
 public:
  DependentTask(std::shared_ptr<Executor> core, const TaskOptions& options, std::shared_ptr<ResultStateBase> state,
                F f, const Args&... args)
      : core_(std::move(core)), options_(options), state_(std::move(state)), f_(f), args_(std::in_place, args...) {}

  // Waits for the arguments (through their callbacks). Throws ValueError if
  // one is an empty result, or as submit() if the pool does not take tasks.
  void start() {
    std::apply([](const auto&... a) { (check_bound(a), ...); }, *args_);
    core_->defer("apply_async");
    core_->attach(*state_);  // waiters pump the pool, as for any task
    std::apply([&](const auto&... a) { (wait_for(a), ...); }, *args_);
    arrived();  // the count started one high: nothing launches before every callback is in place
  }

 private:
  template <class A>
  static void check_bound(const A& arg) {
    if constexpr (is_async_result_v<A>) {
      if (!StateAccess::bound(arg)) throw ValueError("procpool::TaskPool::apply_async: an argument is an empty AsyncResult");
    }
  }

  template <class A>
  void wait_for(const A& arg) {
    if constexpr (is_async_result_v<A>) {
      waiting_.fetch_add(1, std::memory_order_relaxed);
      const auto& dependency = StateAccess::state(arg);
      dependency->on_complete([self = this->shared_from_this(), raw = dependency.get()] {
        // A failed argument fails the task at once.
        if (raw->error()) self->state_->fail(raw->error());
        self->arrived();
      });
    }
  }

  void arrived() {
    if (waiting_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!state_->ready()) {  // not failed by an argument, nor cancelled
      try {
        core_->submit_deferred(
            "apply_async", state_,
            [&](OutputBuffer& out) {
              std::apply([&](const auto&... a) { encode_task(out, f_, dependency_argument(a)...); }, *args_);
            },
            options_);
      } catch (...) {
        state_->fail(std::current_exception());
      }
    }
    args_.reset();  // the arguments' values go now, not with the last reference to this
    core_->undefer();
  }

  std::shared_ptr<Executor> core_;
  TaskOptions options_;
  std::shared_ptr<ResultStateBase> state_;
  F f_;
  std::optional<std::tuple<wire_t<Args>...>> args_;  // a C string as a std::string: it must outlive the call
  std::atomic<std::size_t> waiting_{1};
};

}  // namespace procpool::detail
