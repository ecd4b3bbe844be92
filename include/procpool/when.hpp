/// \file
/// procpool::when_all and procpool::when_any: one future for many.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "procpool/async_result.hpp"
#include "procpool/errors.hpp"

namespace procpool {

namespace detail {

// A void result's place in when_all's tuple.
template <class T>
using when_all_element_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
const std::shared_ptr<ResultState<T>>& checked_input(const AsyncResult<T>& result, const char* call) {
  if (!StateAccess::bound(result)) {
    throw ValueError(std::string("procpool::") + call + ": an input is an empty result");
  }
  return StateAccess::state(result);
}

// Calls `done` once every state in `states` has completed.
template <class Done>
void after_all(const std::vector<std::shared_ptr<ResultStateBase>>& states, Done done) {
  auto left = std::make_shared<std::atomic<std::size_t>>(states.size() + 1);
  auto finish = std::make_shared<Done>(std::move(done));
  const auto arrived = [left, finish] {
    if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) (*finish)();
  };
  for (const auto& state : states) state->on_complete(arrived);
  arrived();
}

}  // namespace detail

/// The future of every result in `results`: an AsyncResult<std::vector<T>>
/// with their values in the same order (AsyncResult<void> if T is void),
/// ready once all of them have finished. If any failed, it fails with the
/// error of the first failed one by position (once all have finished). An
/// empty vector gives a ready, empty result. The values are copied; the
/// inputs stay usable. Cancelling it cancels none of the inputs. Never
/// blocks; throws ValueError if an input is empty (default-constructed or
/// moved from). Thread-safe.
template <class T>
[[nodiscard]] auto when_all(const std::vector<AsyncResult<T>>& results)
    -> AsyncResult<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> {
  using Whole = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  std::vector<std::shared_ptr<detail::ResultState<T>>> parts;
  std::vector<std::shared_ptr<detail::ResultStateBase>> bases;
  for (const auto& r : results) {
    parts.push_back(detail::checked_input(r, "when_all"));
    bases.push_back(parts.back());
  }
  auto whole = std::make_shared<detail::ResultState<Whole>>();
  if (!parts.empty()) whole->follow_source(*parts.front());
  detail::after_all(bases, [whole, parts = std::move(parts)] {
    for (const auto& part : parts) {
      if (part->error()) {
        whole->fail(part->error());
        return;
      }
    }
    if constexpr (std::is_void_v<T>) {
      whole->set_value();
    } else {
      std::vector<T> values;
      values.reserve(parts.size());
      for (const auto& part : parts) values.push_back(part->value());
      whole->set_value(std::move(values));
    }
  });
  return AsyncResult<Whole>(std::move(whole));
}

/// The future of results of any types: an AsyncResult<std::tuple<...>> of
/// their values (std::monostate in place of a void one), ready once all have
/// finished; it fails with the error of the first failed one by position.
/// Never blocks; throws ValueError if an input is empty. Thread-safe.
template <class... T>
  requires(sizeof...(T) > 0)
[[nodiscard]] auto when_all(const AsyncResult<T>&... results) -> AsyncResult<std::tuple<detail::when_all_element_t<T>...>> {
  using Whole = std::tuple<detail::when_all_element_t<T>...>;
  auto parts = std::make_tuple(detail::checked_input(results, "when_all")...);
  std::vector<std::shared_ptr<detail::ResultStateBase>> bases{detail::checked_input(results, "when_all")...};
  auto whole = std::make_shared<detail::ResultState<Whole>>();
  whole->follow_source(*bases.front());
  detail::after_all(bases, [whole, parts] {
    std::exception_ptr error;
    std::apply([&](const auto&... part) { ((error = error ? error : part->error()), ...); }, parts);
    if (error) {
      whole->fail(error);
      return;
    }
    whole->set_value(std::apply(
        [](const auto&... part) {
          return Whole{[&] {
            using Part = typename std::remove_cvref_t<decltype(*part)>::value_type;
            if constexpr (std::is_void_v<Part>) {
              return std::monostate{};
            } else {
              return part->value();
            }
          }()...};
        },
        parts));
  });
  return AsyncResult<Whole>(std::move(whole));
}

/// The future of the first of `results` to finish, with a value or an
/// error: an AsyncResult<std::size_t> holding its index (the lowest index
/// among those already finished when called). It never fails because an
/// input failed: look at results[index]. Cancelling it cancels none of the
/// inputs. Never blocks; throws ValueError if `results` is empty or an
/// input is empty. Thread-safe.
template <class T>
[[nodiscard]] AsyncResult<std::size_t> when_any(const std::vector<AsyncResult<T>>& results) {
  if (results.empty()) throw ValueError("procpool::when_any: no results to wait for");
  std::vector<std::shared_ptr<detail::ResultState<T>>> parts;
  for (const auto& r : results) parts.push_back(detail::checked_input(r, "when_any"));
  auto first = std::make_shared<detail::ResultState<std::size_t>>();
  first->follow_source(*parts.front());
  for (std::size_t i = 0; i < parts.size() && !first->ready(); ++i) {
    parts[i]->on_complete([first, i] { first->set_value(i); });
  }
  return AsyncResult<std::size_t>(std::move(first));
}

}  // namespace procpool
