#include "procpool/detail/buffer.hpp"

#include <cstdlib>
#include <new>
#include <string>

#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

constexpr std::size_t initial_heap = 4096;

std::size_t grown(std::size_t current, std::size_t needed) {
  std::size_t capacity = current < initial_heap ? initial_heap : current;
  while (capacity < needed) capacity *= 2;
  return capacity;
}

}  // namespace

OutputBuffer::~OutputBuffer() { free_storage(); }

void OutputBuffer::free_storage() noexcept {
  if (storage_ == Storage::heap) {
    std::free(begin_);
  } else if (storage_ == Storage::spilled) {
    spill_->discard();
  }
  storage_ = Storage::window;
  begin_ = cur_ = end_ = nullptr;
}

void OutputBuffer::reset(char* window, std::size_t capacity, std::size_t spill_limit) noexcept {
  spill_limit_ = spill_limit;
  if (window == nullptr && storage_ == Storage::heap) {
    cur_ = begin_;  // keep the heap block: the next task reuses it without allocating
    return;
  }
  free_storage();
  begin_ = cur_ = window;
  end_ = window == nullptr ? nullptr : window + capacity;
}

void OutputBuffer::release_spill() noexcept {
  if (storage_ != Storage::spilled) return;
  storage_ = Storage::window;
  begin_ = cur_ = end_ = nullptr;
}

void OutputBuffer::grow(std::size_t extra) {
  const std::size_t needed = size() + extra;
  if (spill_ != nullptr && (storage_ == Storage::spilled || needed > spill_limit_)) {
    move_to_spill(needed);
  } else {
    move_to_heap(grown(static_cast<std::size_t>(end_ - begin_), needed));
  }
}

void OutputBuffer::move_to_heap(std::size_t capacity) {
  const std::size_t used = size();
  char* fresh = static_cast<char*>(storage_ == Storage::heap ? std::realloc(begin_, capacity) : std::malloc(capacity));
  if (fresh == nullptr) throw std::bad_alloc();
  if (storage_ == Storage::window && used != 0) std::memcpy(fresh, begin_, used);
  begin_ = fresh;
  cur_ = fresh + used;
  end_ = fresh + capacity;
  storage_ = Storage::heap;
}

void OutputBuffer::move_to_spill(std::size_t needed) {
  const std::size_t used = size();
  // Only growth reaches the store: a write that fits costs no virtual call.
  const SpillStore::Region region = spill_->grow(storage_ == Storage::spilled ? used : 0, needed);
  if (storage_ != Storage::spilled) {
    if (used != 0) std::memcpy(region.data, begin_, used);
    if (storage_ == Storage::heap) std::free(begin_);
    storage_ = Storage::spilled;
  }
  begin_ = region.data;
  cur_ = region.data + used;
  end_ = region.data + region.capacity;
}

void InputBuffer::underflow(std::size_t wanted) const {
  throw SerializationError("procpool: truncated payload: " + std::to_string(wanted) + " bytes wanted, " +
                           std::to_string(remaining()) + " left");
}

}  // namespace procpool::detail
