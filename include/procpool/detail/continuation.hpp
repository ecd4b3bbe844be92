// The types then() and AsyncResult arguments are worked out from.
#pragma once

#include <functional>
#include <type_traits>

namespace procpool {
template <class T>
class AsyncResult;
}  // namespace procpool

namespace procpool::detail {

template <class T>
inline constexpr bool is_async_result_v = false;
template <class T>
inline constexpr bool is_async_result_v<AsyncResult<T>> = true;

// AsyncResult<V> -> V; any other U -> U.
template <class U>
struct unwrapped {
  using type = U;
};
template <class V>
struct unwrapped<AsyncResult<V>> {
  using type = V;
};
template <class U>
using unwrapped_t = typename unwrapped<U>::type;

// What then(f) calls: f(const T&), or f() for an AsyncResult<void>.
template <class F, class T>
struct continuation {
  static constexpr bool valid = std::is_invocable_v<F&, const T&>;
  using result = std::invoke_result<F&, const T&>;
};
template <class F>
struct continuation<F, void> {
  static constexpr bool valid = std::is_invocable_v<F&>;
  using result = std::invoke_result<F&>;
};
template <class F, class T>
concept Continuation = continuation<F, T>::valid;
template <class F, class T>
using continuation_result_t = std::decay_t<typename continuation<F, T>::result::type>;

// The value callback of then(f, error_f).
template <class T>
struct value_callback {
  using type = std::function<void(const T&)>;
};
template <>
struct value_callback<void> {
  using type = std::function<void()>;
};

}  // namespace procpool::detail
