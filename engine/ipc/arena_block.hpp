// An owned block of a payload arena: given back to its allocator when dropped.
#pragma once

#include <memory>
#include <utility>

#include "engine/ipc/arena_allocator.hpp"

namespace procpool::detail {

class ArenaBlock {
 public:
  ArenaBlock() noexcept = default;
  ArenaBlock(std::shared_ptr<ArenaAllocator> owner, ArenaAllocator::Block block) noexcept
      : owner_(std::move(owner)), block_(block) {}
  ArenaBlock(ArenaBlock&& other) noexcept : owner_(std::move(other.owner_)), block_(other.block_) {}
  ArenaBlock& operator=(ArenaBlock&& other) noexcept {
    if (this != &other) {
      reset();
      owner_ = std::move(other.owner_);
      block_ = other.block_;
    }
    return *this;
  }
  ~ArenaBlock() { reset(); }

  explicit operator bool() const noexcept { return owner_ != nullptr; }
  const ArenaAllocator::Block& block() const noexcept { return block_; }
  char* data() const noexcept { return owner_->data(block_); }
  // Grows the block in place to at least `size` bytes if the bytes after it are free.
  bool extend(std::size_t size) { return owner_->extend(block_, size); }
  void reset() noexcept {
    if (owner_) owner_->release(block_);
    owner_.reset();
  }

 private:
  std::shared_ptr<ArenaAllocator> owner_;
  ArenaAllocator::Block block_;
};

}  // namespace procpool::detail
