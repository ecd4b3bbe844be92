// The spill store of large payloads: a block of a payload arena whose pages
// stay warm between payloads, so a large payload costs about one memcpy to
// write. When the arena has no room, a memfd of its own (MemfdStore).
#pragma once

#include <cstddef>
#include <memory>

#include "engine/ipc/arena_block.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "procpool/detail/buffer.hpp"

namespace procpool::detail {

class ArenaStore final : public SpillStore {
 public:
  // Where the bytes of one spilled payload ended up.
  struct Taken {
    ArenaBlock block;  // in the arena, or
    UniqueFd memfd;    // in a sealed memfd, or neither (nothing spilled)
  };

  ArenaStore() = default;
  ArenaStore(const ArenaStore&) = delete;
  ArenaStore& operator=(const ArenaStore&) = delete;
  ~ArenaStore() override { discard(); }

  // The arena the next payload spills into (none: memfds only). Call between payloads.
  void use(std::shared_ptr<ArenaAllocator> arena) noexcept { arena_ = std::move(arena); }

  Region grow(std::size_t used, std::size_t needed) override;
  void discard() noexcept override;

  // Takes the spilled bytes of `out` (read out.size() first); `out` is left empty.
  Taken take(OutputBuffer& out) noexcept;

 private:
  std::shared_ptr<ArenaAllocator> arena_;
  ArenaBlock block_;
  MemfdStore memfd_;
};

}  // namespace procpool::detail
