// Blocks of one payload arena, handed out by the one process that writes it.
// The pages of the lowest `warm_limit` bytes stay touched between payloads
// (that is the point: a fresh page costs far more than copying into a warm
// one); a block freed above that limit gives its pages back.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <span>

#include "engine/ipc/extent_allocator.hpp"

namespace procpool::detail {

class ArenaAllocator {
 public:
  struct Block {
    std::size_t offset = 0;
    std::size_t size = 0;  // as allocated (bytes usable)
  };

  ArenaAllocator(std::span<char> arena, std::size_t warm_limit);
  ArenaAllocator(const ArenaAllocator&) = delete;
  ArenaAllocator& operator=(const ArenaAllocator&) = delete;

  // A block of at least `size` bytes with its pages faulted in, or nullopt if
  // the arena has no free range that large. Thread-safe.
  std::optional<Block> allocate(std::size_t size);
  // Grows `block` in place to at least `size` bytes if the bytes after it are
  // free. Thread-safe.
  bool extend(Block& block, std::size_t size);
  // Thread-safe; `block` must come from this allocator.
  void release(const Block& block) noexcept;

  char* data(const Block& block) const noexcept { return arena_.data() + block.offset; }
  std::span<char> arena() const noexcept { return arena_; }

 private:
  // Faults in the part of [offset, offset + size) that may not be touched yet.
  void warm_up(std::size_t offset, std::size_t size, std::size_t touched_end) noexcept;

  std::span<char> arena_;
  std::size_t warm_limit_;
  std::mutex mutex_;  // guards extents_ (submitting threads allocate, the result thread releases)
  ExtentAllocator extents_;
};

}  // namespace procpool::detail
