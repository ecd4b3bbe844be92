#include "engine/ipc/arena_allocator.hpp"

#include <algorithm>

#include "engine/ipc/payload_arenas.hpp"

namespace procpool::detail {

ArenaAllocator::ArenaAllocator(std::span<char> arena, std::size_t warm_limit)
    : arena_(arena), warm_limit_(std::min(warm_limit, arena.size())), extents_(arena.size()) {}

std::optional<ArenaAllocator::Block> ArenaAllocator::allocate(std::size_t size) {
  std::size_t offset = 0;
  std::size_t touched_end = 0;
  {
    std::lock_guard lock(mutex_);
    touched_end = std::min(extents_.high_water(), warm_limit_);
    const auto found = extents_.allocate(size);
    if (!found) return std::nullopt;
    offset = *found;
  }
  const Block block{offset, ExtentAllocator::rounded(size)};
  warm_up(block.offset, block.size, touched_end);
  return block;
}

bool ArenaAllocator::extend(Block& block, std::size_t size) {
  std::size_t touched_end = 0;
  {
    std::lock_guard lock(mutex_);
    touched_end = std::min(extents_.high_water(), warm_limit_);
    if (!extents_.extend(block.offset, block.size, size)) return false;
  }
  const std::size_t old_end = block.offset + block.size;
  block.size = std::max(block.size, ExtentAllocator::rounded(size));
  warm_up(old_end, block.offset + block.size - old_end, touched_end);
  return true;
}

void ArenaAllocator::release(const Block& block) noexcept {
  // Pages past the warm limit go back before the range is free again, so a
  // later allocation there is known to start cold.
  const std::size_t end = block.offset + block.size;
  if (end > warm_limit_) {
    const std::size_t from = std::max(block.offset, warm_limit_);
    PayloadArenas::forget(arena_.data() + from, end - from);
  }
  std::lock_guard lock(mutex_);
  extents_.release(block.offset, block.size);
}

void ArenaAllocator::warm_up(std::size_t offset, std::size_t size, std::size_t touched_end) noexcept {
  // Below touched_end every page was faulted in by an earlier block and kept.
  const std::size_t end = offset + size;
  const std::size_t from = std::max(offset, touched_end);
  if (end > from) PayloadArenas::populate(arena_.data() + from, end - from);
}

}  // namespace procpool::detail
