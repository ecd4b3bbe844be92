#include "engine/ipc/extent_allocator.hpp"

#include <algorithm>
#include <iterator>

namespace procpool::detail {

ExtentAllocator::ExtentAllocator(std::size_t capacity) : capacity_(capacity / granule * granule) {
  if (capacity_ != 0) free_.emplace(0, capacity_);
}

std::optional<std::size_t> ExtentAllocator::allocate(std::size_t size) {
  if (size > capacity_) return std::nullopt;  // also keeps rounded() from overflowing
  const std::size_t want = rounded(size);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < want) continue;
    const std::size_t offset = it->first;
    const std::size_t left = it->second - want;
    free_.erase(it);
    if (left != 0) free_.emplace(offset + want, left);
    in_use_ += want;
    high_water_ = std::max(high_water_, offset + want);
    return offset;
  }
  return std::nullopt;
}

bool ExtentAllocator::extend(std::size_t offset, std::size_t size, std::size_t new_size) {
  if (new_size > capacity_) return false;
  const std::size_t have = rounded(size);
  const std::size_t want = rounded(new_size);
  if (want <= have) return true;
  const auto next = free_.find(offset + have);
  if (next == free_.end() || next->second < want - have) return false;
  const std::size_t left = next->second - (want - have);
  free_.erase(next);
  if (left != 0) free_.emplace(offset + want, left);
  in_use_ += want - have;
  high_water_ = std::max(high_water_, offset + want);
  return true;
}

void ExtentAllocator::release(std::size_t offset, std::size_t size) {
  std::size_t begin = offset;
  std::size_t length = rounded(size);
  in_use_ -= length;
  // Merge with the free neighbours on either side.
  auto after = free_.lower_bound(begin);
  if (after != free_.end() && after->first == begin + length) {
    length += after->second;
    after = free_.erase(after);
  }
  if (after != free_.begin()) {
    const auto before = std::prev(after);
    if (before->first + before->second == begin) {
      begin = before->first;
      length += before->second;
      free_.erase(before);
    }
  }
  free_.emplace(begin, length);
}

std::size_t ExtentAllocator::largest_free() const noexcept {
  std::size_t largest = 0;
  for (const auto& [offset, size] : free_) largest = std::max(largest, size);
  return largest;
}

}  // namespace procpool::detail
