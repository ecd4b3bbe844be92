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

  // Takes a place. If none is free, it waits until a quarter of them are
  // (at least one), so that a producer and the workers do not take turns on
  // every task: it pumps `source` (if any) for a moment, then sleeps. Returns
  // false, holding no place, once closed. On a thread inside an ExemptScope
  // (one that delivers results) it never blocks: it takes a place over the limit.
  bool acquire(ResultSource* source) noexcept;
  // Gives a place back. Never blocks; wakes the waiting acquire()s once a
  // quarter of the places are free.
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

  void wake() noexcept;
  // Whether a waiter may go on: a quarter of the places free, or closed.
  bool may_go(std::uint32_t word) const noexcept { return (word & closed_bit) != 0 || word <= low_; }

  const std::uint32_t max_;
  const std::uint32_t low_;  // a waiter goes on at this many places taken (or fewer)
  // Places taken, plus closed_bit once closed.
  std::atomic<std::uint32_t> word_{0};
  // The futex word waiters sleep on: bumped only when they should look again
  // (low_ reached, or closed), not on every release.
  std::atomic<std::uint32_t> wakes_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace procpool::detail
