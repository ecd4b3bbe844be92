// procpool::IMapIterator<R>: the results of Pool::imap / imap_unordered, one at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>

#include "procpool/detail/map_state.hpp"

namespace procpool {

// The results of imap (in input order) or imap_unordered (in completion
// order). An input range: `for (R v : pool.imap(f, xs))`. It pulls the input
// lazily, a chunk at a time, keeping a bounded number of chunks in flight, so
// an endless input works in bounded memory. An item whose task threw (or
// whose input threw) throws that error when reached; the iterator can go on
// after it. Not thread-safe: one consumer at a time. It may outlive its pool.
template <class R>
class [[nodiscard]] IMapIterator {
 public:
  explicit IMapIterator(std::shared_ptr<detail::IMapState<R>> state) : state_(std::move(state)) {}

  // Blocks until the next result; nullopt at the end. Throws the item's error.
  std::optional<R> next() { return state_->next(std::chrono::nanoseconds(-1)); }
  // As next(), but throws TimeoutError after `timeout`; the tasks go on.
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return state_->next(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    const R& operator*() const { return *current_; }
    const R* operator->() const { return &*current_; }
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.current_; }

   private:
    friend class IMapIterator;
    explicit iterator(IMapIterator* owner) : owner_(owner) {}
    IMapIterator* owner_ = nullptr;
    std::optional<R> current_;
  };

  // Fetches the first result (blocking; throws its error).
  iterator begin() { return ++iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::shared_ptr<detail::IMapState<R>> state_;
};

}  // namespace procpool
