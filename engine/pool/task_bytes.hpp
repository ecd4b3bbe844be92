// A small task's serialized bytes while it waits in the parent (the backlog,
// or taken back from a ring): inside the task record when they fit, so a
// batch of a million small tasks costs no allocation per task for them (and
// no free on the thread that dispatches them, which is not the one that
// allocated them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace procpool::detail {

class TaskBytes {
 public:
  // A function and a scalar argument or two fit (a frame for f(int) takes
  // 36 bytes), and keep a PoolTask at 128 bytes.
  static constexpr std::size_t inline_capacity = 44;

  TaskBytes() noexcept = default;
  TaskBytes(TaskBytes&& other) noexcept { take(other); }
  TaskBytes& operator=(TaskBytes&& other) noexcept {
    if (this != &other) take(other);
    return *this;
  }

  void assign(const char* first, const char* last) {
    const auto n = static_cast<std::size_t>(last - first);
    if (n <= inline_capacity) {
      heap_.reset();
      if (n != 0) std::memcpy(inline_, first, n);
    } else {
      heap_ = std::make_unique_for_overwrite<char[]>(n);
      std::memcpy(heap_.get(), first, n);
    }
    size_ = static_cast<std::uint32_t>(n);
  }
  const char* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  std::size_t size() const noexcept { return size_; }

 private:
  void take(TaskBytes& other) noexcept {
    heap_ = std::move(other.heap_);
    size_ = other.size_;
    if (!heap_ && size_ != 0) std::memcpy(inline_, other.inline_, size_);
    other.size_ = 0;
  }

  std::unique_ptr<char[]> heap_;  // null while the bytes are inline
  std::uint32_t size_ = 0;  // a frame's payload size fits (ring frames are far smaller)
  char inline_[inline_capacity];
};

}  // namespace procpool::detail
