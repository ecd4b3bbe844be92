// A first-fit allocator of byte ranges in [0, capacity). Its bookkeeping is
// private to the process that allocates: nothing another process writes can
// confuse it. First fit keeps allocations at the lowest free offsets, so the
// same (already faulted-in) pages of a shared arena serve payload after payload.
#pragma once

#include <cstddef>
#include <map>
#include <optional>

namespace procpool::detail {

class ExtentAllocator {
 public:
  // Every offset and size handed out is a multiple of this.
  static constexpr std::size_t granule = 64;

  explicit ExtentAllocator(std::size_t capacity);

  // The offset of `size` free bytes (rounded up to the granule), or nullopt
  // if no free range is large enough. size 0 is treated as 1.
  std::optional<std::size_t> allocate(std::size_t size);
  // Grows the allocation at `offset` from `size` to `new_size` bytes where it
  // is, if the bytes after it are free. Returns whether it did.
  bool extend(std::size_t offset, std::size_t size, std::size_t new_size);
  // Gives back an allocation made here (offset and size as allocated/extended).
  void release(std::size_t offset, std::size_t size);

  std::size_t capacity() const noexcept { return capacity_; }
  // Bytes allocated now.
  std::size_t in_use() const noexcept { return in_use_; }
  // The end of the highest allocation ever made: the pages below it have been used.
  std::size_t high_water() const noexcept { return high_water_; }
  // The largest single allocation that could succeed now.
  std::size_t largest_free() const noexcept;

  static constexpr std::size_t rounded(std::size_t size) noexcept {
    const std::size_t n = size == 0 ? 1 : size;
    return (n + granule - 1) / granule * granule;
  }

 private:
  std::size_t capacity_;
  std::size_t in_use_ = 0;
  std::size_t high_water_ = 0;
  std::map<std::size_t, std::size_t> free_;  // offset -> size, never adjacent (coalesced)
};

}  // namespace procpool::detail
