// The engine's side of shared blocks (procpool/detail/shared_block.hpp):
// collecting the blocks a task carries while it is encoded, telling pools
// when a block they sent is released, and finding blocks in a worker.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "procpool/detail/shared_block.hpp"

namespace procpool::detail {

using SharedBlocks = std::vector<std::shared_ptr<SharedBlock>>;

// While alive, handles encoded on this thread attach their blocks here (see
// attach_shared_block). Scopes nest; only the innermost collects. A pool
// whose workers cannot map this process's memory (MPI ranks on other hosts)
// takes values only: a SharedArray then fails to encode.
class AttachmentScope {
 public:
  explicit AttachmentScope(bool arrays_allowed = true) noexcept;
  AttachmentScope(const AttachmentScope&) = delete;
  AttachmentScope& operator=(const AttachmentScope&) = delete;
  ~AttachmentScope();

  void add(const std::shared_ptr<SharedBlock>& block);
  SharedBlocks take() noexcept { return std::move(blocks_); }
  bool arrays_allowed() const noexcept { return arrays_allowed_; }

 private:
  SharedBlocks blocks_;
  AttachmentScope* outer_;
  bool arrays_allowed_;
};

// Ids of blocks released in this process since the last take(), for a pool
// to tell the workers it sent them to. `wake` runs after each release until
// close(), outside the inbox's lock: it may take the pool's own lock, even
// while the pool's thread, holding that lock, releases a block. Thread-safe.
class ReleasedBlocks {
 public:
  explicit ReleasedBlocks(std::function<void()> wake) : wake_(std::move(wake)) {}
  void released(std::uint64_t id) noexcept;
  std::vector<std::uint64_t> take();
  // No more wakes: the pool is going away. Waits for the wakes under way.
  void close() noexcept;

 private:
  std::mutex mutex_;
  std::condition_variable woken_;
  std::vector<std::uint64_t> ids_;
  std::function<void()> wake_;
  int waking_ = 0;
  bool open_ = true;
};

// Every release of a block that was sent to a worker goes to `inbox` while it lives.
void watch_released_blocks(const std::weak_ptr<ReleasedBlocks>& inbox);

// In a worker: where find_shared_block() looks ids up.
using SharedBlockLookup = std::shared_ptr<SharedBlock> (*)(std::uint64_t id);
void set_shared_block_lookup(SharedBlockLookup lookup) noexcept;

}  // namespace procpool::detail
