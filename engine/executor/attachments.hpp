// The engine's side of shared blocks (procpool/detail/shared_block.hpp):
// collecting the blocks a task carries while it is encoded, telling pools
// when a block they sent is released, and finding blocks in a worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "procpool/detail/shared_block.hpp"

namespace procpool::detail {

using SharedBlocks = std::vector<std::shared_ptr<SharedBlock>>;

// While alive, handles encoded on this thread attach their blocks here (see
// attach_shared_block). Scopes nest; only the innermost collects.
class AttachmentScope {
 public:
  AttachmentScope() noexcept;
  AttachmentScope(const AttachmentScope&) = delete;
  AttachmentScope& operator=(const AttachmentScope&) = delete;
  ~AttachmentScope();

  void add(const std::shared_ptr<SharedBlock>& block);
  SharedBlocks take() noexcept { return std::move(blocks_); }

 private:
  SharedBlocks blocks_;
  AttachmentScope* outer_;
};

// Ids of blocks released in this process since the last take(), for a pool
// to tell the workers it sent them to. `wake` runs (under the inbox's lock)
// after each release until close(). Thread-safe.
class ReleasedBlocks {
 public:
  explicit ReleasedBlocks(std::function<void()> wake) : wake_(std::move(wake)) {}
  void released(std::uint64_t id) noexcept;
  std::vector<std::uint64_t> take();
  // No more wakes: the pool is going away.
  void close() noexcept;

 private:
  std::mutex mutex_;
  std::vector<std::uint64_t> ids_;
  std::function<void()> wake_;
  bool open_ = true;
};

// Every release of a block that was sent to a worker goes to `inbox` while it lives.
void watch_released_blocks(const std::weak_ptr<ReleasedBlocks>& inbox);

// In a worker: where find_shared_block() looks ids up.
using SharedBlockLookup = std::shared_ptr<SharedBlock> (*)(std::uint64_t id);
void set_shared_block_lookup(SharedBlockLookup lookup) noexcept;

}  // namespace procpool::detail
