#include "engine/ipc/arena_store.hpp"

#include <algorithm>
#include <cstring>

#include "engine/sys/constants.hpp"

namespace procpool::detail {

SpillStore::Region ArenaStore::grow(std::size_t used, std::size_t needed) {
  if (!memfd_.holds() && arena_) {
    const std::size_t current = block_ ? block_.block().size : 0;
    // What is needed, or double: a payload written in many small pieces then
    // grows a logarithmic number of times; one written in one piece fits exactly.
    const std::size_t size = std::max({needed, 2 * current, smallest_spill});
    if (block_ && block_.extend(size)) return {block_.data(), block_.block().size};
    auto fresh = arena_->allocate(size);
    if (!fresh && size > needed) fresh = arena_->allocate(needed);  // room for what is needed, if not for double
    if (fresh) {
      ArenaBlock next(arena_, *fresh);
      if (block_ && used != 0) std::memcpy(next.data(), block_.data(), used);
      block_ = std::move(next);
      return {block_.data(), block_.block().size};
    }
  }
  // No room in the arena (or none to use): a memfd of its own.
  const Region region = memfd_.grow(used, needed);
  if (block_) {
    if (used != 0) std::memcpy(region.data, block_.data(), used);
    block_.reset();
  }
  return region;
}

void ArenaStore::discard() noexcept {
  block_.reset();
  memfd_.discard();
}

ArenaStore::Taken ArenaStore::take(OutputBuffer& out) noexcept {
  Taken taken;
  if (out.storage() != OutputBuffer::Storage::spilled) return taken;
  if (memfd_.holds()) {
    taken.memfd = memfd_.release(out);
  } else {
    out.release_spill();
    taken.block = std::move(block_);
  }
  return taken;
}

}  // namespace procpool::detail
