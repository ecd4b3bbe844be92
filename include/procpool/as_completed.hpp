/// \file
/// procpool::as_completed: results in the order they finish.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <vector>

#include "procpool/async_result.hpp"
#include "procpool/errors.hpp"

namespace procpool {

/// The input range procpool::as_completed() returns: each result of the
/// vector it was given, once, as a reference, in the order they finish
/// (with a value or an error; those finished before the call first, by
/// position). Incrementing the iterator (and begin()) blocks until the next
/// one has finished. Single-pass; not thread-safe (one consumer); the vector
/// must outlive it and keep its size.
template <class T>
class AsCompleted {
  // Indices of finished results, pushed by their completion callbacks.
  struct Finished {
    std::mutex mutex;
    std::condition_variable arrived;
    std::deque<std::size_t> order;
  };

 public:
  /// Registers for every result's completion. Never blocks; throws
  /// ValueError if a result is empty.
  explicit AsCompleted(std::vector<AsyncResult<T>>& results)
      : results_(&results), finished_(std::make_shared<Finished>()) {
    for (const auto& r : results) {
      if (!detail::StateAccess::bound(r)) throw ValueError("procpool::as_completed: an input is an empty result");
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
      detail::StateAccess::state(results[i])->on_complete([finished = finished_, i] {
        {
          std::lock_guard lock(finished->mutex);
          finished->order.push_back(i);
        }
        finished->arrived.notify_one();
      });
    }
  }

  /// Not copyable: its iterators point into it.
  AsCompleted(const AsCompleted&) = delete;
  /// Not copyable: its iterators point into it.
  AsCompleted& operator=(const AsCompleted&) = delete;
  /// Movable before begin() is called.
  AsCompleted(AsCompleted&&) noexcept = default;
  /// Movable before begin() is called.
  AsCompleted& operator=(AsCompleted&&) noexcept = default;

  /// The range's input iterator; it compares equal to end() past the last result.
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;  ///< single-pass
    using value_type = AsyncResult<T>;                  ///< what it refers to
    using difference_type = std::ptrdiff_t;            ///< required of an iterator
    using reference = AsyncResult<T>&;                  ///< a result of the vector

    /// A singular iterator (input iterators must be default-constructible).
    iterator() = default;
    /// The result that finished; never blocks.
    reference operator*() const { return (*range_->results_)[range_->current_]; }
    /// Blocks until the next result has finished (returns at once past the last).
    iterator& operator++() {
      range_->advance();
      return *this;
    }
    /// As ++it.
    void operator++(int) { ++*this; }
    /// Whether every result has been handed out; never blocks.
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.past_end(); }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* range) : range_(range) {}
    bool past_end() const noexcept { return range_->taken_ > range_->results_->size(); }
    AsCompleted* range_ = nullptr;
  };

  /// Blocks until the first result has finished (not at all for an empty vector).
  iterator begin() {
    if (taken_ == 0) advance();
    return iterator(this);
  }
  /// The end of the range; never blocks.
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  void advance() {
    ++taken_;
    if (taken_ > results_->size()) return;
    std::unique_lock lock(finished_->mutex);
    finished_->arrived.wait(lock, [&] { return !finished_->order.empty(); });
    current_ = finished_->order.front();
    finished_->order.pop_front();
  }

  std::vector<AsyncResult<T>>* results_;
  std::shared_ptr<Finished> finished_;
  std::size_t taken_ = 0;  // results handed out so far, plus the one under the iterator
  std::size_t current_ = 0;
};

/// The results in `results` in the order they finish, as an input range of
/// AsyncResult<T>&:
///
/// \code
/// for (auto& r : procpool::as_completed(results)) std::cout << r.get() << '\n';
/// \endcode
///
/// Iterating blocks until the next result has finished; each result comes
/// once. Throws ValueError if a result is empty. `results` must outlive the
/// range and keep its size.
template <class T>
[[nodiscard]] AsCompleted<T> as_completed(std::vector<AsyncResult<T>>& results) {
  return AsCompleted<T>(results);
}

}  // namespace procpool
