// A worker's large results in its result arena, until the parent has read
// them. The parent reads results in the order they were published and counts
// the arena ones it is done with in a shared counter; the worker gives those
// blocks back before it allocates. The counter is the only shared word this
// reads: a garbage value (clamped) can at worst free blocks early, so that a
// result not read yet is overwritten (a wrong value or a SerializationError
// for it), never this process's bookkeeping.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>

#include "engine/ipc/arena_block.hpp"

namespace procpool::detail {

class ResultBlocks {
 public:
  explicit ResultBlocks(const std::atomic<std::uint64_t>& taken) noexcept : taken_(taken) {}

  // A block just published in a result frame.
  void published(ArenaBlock block) {
    blocks_.push_back(std::move(block));
    ++published_;
  }
  // Gives back every block the parent has counted as read.
  void reclaim() noexcept {
    std::uint64_t taken = taken_.load(std::memory_order_acquire);
    if (taken > published_) taken = published_;
    while (published_ - blocks_.size() < taken) blocks_.pop_front();
  }

 private:
  const std::atomic<std::uint64_t>& taken_;
  std::deque<ArenaBlock> blocks_;
  std::uint64_t published_ = 0;
};

}  // namespace procpool::detail
