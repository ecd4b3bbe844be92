/// \file
/// procpool::IMapIterator<R>: the results of Pool::imap / imap_unordered, one at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>

#include "procpool/detail/map_state.hpp"
#include "procpool/progress.hpp"

namespace procpool {

/// The results of imap (in input order) or imap_unordered (in completion
/// order). An input range: `for (R v : pool.imap(f, xs))`. It pulls the input
/// lazily, a chunk at a time, keeping a bounded number of chunks in flight, so
/// an endless input works in bounded memory. An item whose task threw (or
/// whose input threw) throws that error when reached; the iterator can go on
/// after it. Not thread-safe: one consumer at a time. It may outlive its pool.
/// Destroying it (its last copy) before its end stops reading the input and
/// cancels the chunks no worker has started (AsyncResult::cancel()); chunks
/// already running finish, their results unread. That never blocks on a task.
template <class R>
class [[nodiscard]] IMapIterator {
 public:
  /// The results behind `state`: Pool::imap and imap_unordered build them
  /// this way, user code has no use for it. Never blocks or throws.
  explicit IMapIterator(std::shared_ptr<detail::IMapState<R>> state) : state_(std::move(state)) {}

  /// Blocks until the next result; nullopt at the end. Reads more input and
  /// submits it, on this thread, to keep the look-ahead full. Throws the
  /// item's error (its task's, or the input range's); next() then goes on
  /// with the following item. Not thread-safe.
  std::optional<R> next() { return state_->next(std::chrono::nanoseconds(-1)); }
  /// As next(), but throws TimeoutError if no result comes within `timeout`;
  /// the tasks go on, and a later next() returns that result. Not thread-safe.
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return state_->next(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  /// How far the imap has got: {items whose chunk has finished (consumed or
  /// not, with a value or an error), items in all}; the total is 0 until the
  /// input has been read to its end (for an endless input, always). Never
  /// blocks or throws. Thread-safe: another thread may watch while one
  /// consumes.
  Progress progress() const noexcept { return state_->progress(); }
  /// Blocks until every result has arrived, consuming none: it reads the rest
  /// of the input on this thread as chunks finish (keeping the look-ahead's
  /// number of chunks running; the finished ones wait in memory), so the
  /// results can then be iterated without waiting. Never returns for an
  /// endless input. Does not throw the items' errors (they surface as they
  /// are consumed). Not thread-safe: call it from the consuming thread.
  void wait_all() {
    while (!state_->wait_arrived(std::chrono::hours(1))) {
    }
  }
  /// As wait_all(), but blocks at most about `timeout`; returns whether every
  /// result has arrived. Not thread-safe.
  template <class Rep, class Period>
  bool wait_all(std::chrono::duration<Rep, Period> timeout) {
    return state_->wait_arrived(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  /// The input iterator of `for (R v : results)`: it holds the current
  /// result. Not thread-safe.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;  ///< A single-pass input iterator
    using value_type = R;                               ///< The result type
    using difference_type = std::ptrdiff_t;             ///< As the iterator concepts require

    /// An iterator on no results (the iterator concepts require one). Never
    /// blocks or throws.
    iterator() = default;
    /// The current result. Never blocks or throws.
    const R& operator*() const { return *current_; }
    /// The current result's members. Never blocks or throws.
    const R* operator->() const { return &*current_; }
    /// Moves to the next result: blocks and throws as IMapIterator::next().
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    /// As ++it; returns nothing, as an input iterator may.
    void operator++(int) { ++*this; }
    /// Whether the results are exhausted. Never blocks or throws.
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.current_; }

   private:
    friend class IMapIterator;
    explicit iterator(IMapIterator* owner) : owner_(owner) {}
    IMapIterator* owner_ = nullptr;
    std::optional<R> current_;
  };

  /// Fetches the first result (blocks, and throws its error, as next()) and
  /// returns an iterator on it. Call it once. Not thread-safe.
  iterator begin() { return ++iterator(this); }
  /// The end of the results. Never blocks or throws.
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // The consumer's handle (TaskPool::imap_chunks): when the last copy goes, the imap is abandoned.
  std::shared_ptr<detail::IMapState<R>> state_;
};

}  // namespace procpool
