// PoolOptions::max_pending: how many submitted tasks have not finished, and
// the submitters that wait for that number to drop below the limit. A task
// holds its place from before it is queued until its result state completes,
// however it ends (ResultStateBase::complete() gives the place back).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/executor/result_source.hpp"

namespace procpool::detail {

class PendingLimit {
 public:
  // At most `max` places (capped at 2^31 - 1; 0 is taken as 1).
  explicit PendingLimit(std::size_t max) noexcept;
  PendingLimit(const PendingLimit&) = delete;
  PendingLimit& operator=(const PendingLimit&) = delete;

  // Takes a place; while none is free, pumps `source` (if any) for a moment,
  // then sleeps until a place frees or close() is called. Returns false,
  // holding no place, once closed. On a thread inside an ExemptScope (one
  // that delivers results) it never blocks: it takes a place over the limit.
  bool acquire(ResultSource* source) noexcept;
  // Gives a place back. Never blocks; wakes the blocked acquire()s.
  void release() noexcept;
  // The pool stopped taking tasks: wakes every acquire(); later ones return false.
  void close() noexcept;
  // Places taken now (for tests and statistics).
  std::uint32_t taken() const noexcept { return word_.load(std::memory_order_relaxed) & ~closed_bit; }

  // Marks the current thread, while it lives, as one that completes results
  // and runs their callbacks (a pool's result thread): were it to wait for a
  // place, nobody might be left to free one.
  class ExemptScope {
   public:
    ExemptScope() noexcept;
    ~ExemptScope();
    ExemptScope(const ExemptScope&) = delete;
    ExemptScope& operator=(const ExemptScope&) = delete;

   private:
    bool was_;
  };

 private:
  static constexpr std::uint32_t closed_bit = std::uint32_t{1} << 31;

  const std::uint32_t max_;
  // The futex word: places taken, plus closed_bit once closed, so that a
  // close() between a waiter's look and its sleep changes what it sleeps on.
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace procpool::detail
