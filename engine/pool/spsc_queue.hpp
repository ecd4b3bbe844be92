// A bounded FIFO for one producer thread and one consumer thread at a time,
// without a lock between them. The pool keeps each worker's dispatched tasks
// in one: submitters push (under the pool mutex), the thread draining results
// pops (under the drain mutex), so the two never contend for a lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

#include "engine/sys/constants.hpp"

namespace procpool::detail {

template <class T>
class SpscQueue {
 public:
  // `capacity` must be a power of two. The cells are raw memory until used:
  // a new pool touches (and its destructor walks) none of them, so starting
  // and stopping it costs no page faults for cells that never hold a task.
  explicit SpscQueue(std::size_t capacity)
      : items_(std::allocator<T>().allocate(capacity)), mask_(capacity - 1), indices_(std::make_unique<Indices>()) {}
  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;
  ~SpscQueue() {
    drain([](T&&) {});
    std::allocator<T>().deallocate(items_, capacity());
  }

  // Either side (a snapshot while the other side works).
  std::size_t size() const noexcept {
    return indices_->tail.load(std::memory_order_acquire) - indices_->head.load(std::memory_order_acquire);
  }
  bool empty() const noexcept { return size() == 0; }
  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Producer side; the caller has checked size() < capacity().
  void push_back(T&& item) {
    const std::size_t tail = indices_->tail.load(std::memory_order_relaxed);
    ::new (static_cast<void*>(items_ + (tail & mask_))) T(std::move(item));
    indices_->tail.store(tail + 1, std::memory_order_release);
  }

  // Consumer side; the caller has checked !empty().
  T& front() noexcept { return cell(indices_->head.load(std::memory_order_relaxed)); }
  void pop_front() {
    const std::size_t head = indices_->head.load(std::memory_order_relaxed);
    std::destroy_at(&cell(head));  // drops what it holds now, not when the cell is reused
    indices_->head.store(head + 1, std::memory_order_release);
  }

  // Both sides held by the caller: every item, oldest first; then emptied.
  template <class Take>
  void drain(Take&& take) {
    const std::size_t tail = indices_->tail.load(std::memory_order_relaxed);
    std::size_t head = indices_->head.load(std::memory_order_relaxed);
    for (; head != tail; ++head) {
      T& item = cell(head);
      take(std::move(item));
      std::destroy_at(&item);
    }
    indices_->head.store(head, std::memory_order_release);
  }

 private:
  struct Indices {
    alignas(cache_line) std::atomic<std::size_t> head{0};
    alignas(cache_line) std::atomic<std::size_t> tail{0};
  };
  T& cell(std::size_t index) noexcept { return *std::launder(items_ + (index & mask_)); }

  T* items_;  // capacity() cells; those in [head, tail) hold constructed items
  std::size_t mask_;
  std::unique_ptr<Indices> indices_;
};

}  // namespace procpool::detail
