#include "engine/ipc/ring.hpp"

#include <atomic>
#include <cstring>

namespace procpool::detail {

Ring::Ring(RingControl* control, char* data, std::size_t capacity) noexcept
    : control_(control), data_(data), capacity_(capacity), cached_head_(control->head.load()) {}

bool Ring::reserve(std::size_t span, std::size_t& padding) noexcept {
  const std::uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  const std::size_t offset = tail & (capacity_ - 1);
  const std::size_t to_end = capacity_ - offset;
  padding = span <= to_end ? 0 : to_end;
  const std::uint64_t needed = padding + span;
  if (tail + needed - cached_head_ > capacity_) {
    // acquire: the consumer is done reading the bytes we are about to reuse.
    cached_head_ = control_->head.load(std::memory_order_acquire);
    if (tail + needed - cached_head_ > capacity_) return false;
  }
  return true;
}

bool Ring::has_room_for(std::size_t size) noexcept {
  std::size_t padding = 0;
  return reserve(frame_span(size), padding);
}

void Ring::write_header(std::uint64_t position, FrameKind kind, std::uint16_t flags, std::uint64_t task_id,
                        std::size_t size) noexcept {
  const FrameHeader header{static_cast<std::uint32_t>(size), kind, flags, task_id};
  std::memcpy(data_ + (position & (capacity_ - 1)), &header, sizeof header);
}

char* Ring::window(std::size_t& room) noexcept {
  const std::uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  const std::size_t to_end = capacity_ - (tail & (capacity_ - 1));
  cached_head_ = control_->head.load(std::memory_order_acquire);
  const std::size_t free = capacity_ - static_cast<std::size_t>(tail - cached_head_);
  const std::size_t contiguous = to_end < free ? to_end : free;
  room = contiguous > sizeof(FrameHeader) + frame_alignment ? contiguous - sizeof(FrameHeader) - frame_alignment : 0;
  if (room > max_payload()) room = max_payload();
  return data_ + (tail & (capacity_ - 1)) + sizeof(FrameHeader);
}

void Ring::commit_in_place(FrameKind kind, std::uint16_t flags, std::uint64_t task_id, std::size_t size) noexcept {
  const std::uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  write_header(tail, kind, flags, task_id, size);
  // release: the header and payload are visible before the consumer sees the new tail.
  control_->tail.store(tail + frame_span(size), std::memory_order_release);
}

bool Ring::push(FrameKind kind, std::uint16_t flags, std::uint64_t task_id, const void* payload,
                std::size_t size) noexcept {
  const std::size_t span = frame_span(size);
  std::size_t padding = 0;
  if (size > max_payload() || !reserve(span, padding)) return false;
  std::uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  if (padding != 0) {
    write_header(tail, FrameKind::padding, 0, 0, padding - sizeof(FrameHeader));
    tail += padding;
  }
  write_header(tail, kind, flags, task_id, size);
  if (size != 0) std::memcpy(data_ + (tail & (capacity_ - 1)) + sizeof(FrameHeader), payload, size);
  control_->tail.store(tail + span, std::memory_order_release);
  return true;
}

bool Ring::peek_at(std::uint64_t position, FrameView& frame) const noexcept {
  const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
  std::uint64_t skipped = 0;
  for (int round = 0; round < 2; ++round) {
    if (position == tail) return false;
    const std::size_t offset = position & (capacity_ - 1);
    const std::uint64_t available = tail - position;
    // Validate everything against the ring's geometry before trusting it.
    if (available > capacity_ || available < sizeof(FrameHeader) || offset % frame_alignment != 0) return false;
    std::memcpy(&frame.header, data_ + offset, sizeof frame.header);
    const std::uint64_t span = frame_span(frame.header.size);
    if (span > capacity_ - offset || span > available) return false;
    if (frame.header.kind == FrameKind::padding) {
      // Padding always runs exactly to the end of the buffer, and only once in a row.
      if (span != capacity_ - offset || round != 0) return false;
      position += span;
      skipped = span;
      continue;
    }
    if (frame.header.kind != FrameKind::task && frame.header.kind != FrameKind::stop &&
        frame.header.kind != FrameKind::result && frame.header.kind != FrameKind::forget &&
        frame.header.kind != FrameKind::timing) {
      return false;
    }
    frame.payload = data_ + offset + sizeof(FrameHeader);
    frame.span = skipped + span;
    return true;
  }
  return false;
}

Ring::Peek Ring::peek(FrameView& frame) const noexcept {
  return peek_from(control_->head.load(std::memory_order_relaxed), frame);
}

Ring::Peek Ring::peek_from(std::uint64_t position, FrameView& frame) const noexcept {
  if (position == control_->tail.load(std::memory_order_acquire)) return Peek::empty;
  return peek_at(position, frame) ? Peek::frame : Peek::corrupt;
}

namespace {

// The flags word of a frame's header in the ring, where both sides may mark it.
std::atomic_ref<std::uint16_t> live_flags(const FrameView& frame) noexcept {
  auto* header = reinterpret_cast<FrameHeader*>(const_cast<char*>(frame.payload) - sizeof(FrameHeader));
  return std::atomic_ref<std::uint16_t>(header->flags);
}

}  // namespace

std::uint16_t Ring::marks(const FrameView& frame) const noexcept {
  return live_flags(frame).load(std::memory_order_acquire);
}

bool Ring::try_mark(const FrameView& frame, std::uint16_t bit) noexcept {
  std::atomic_ref<std::uint16_t> flags = live_flags(frame);
  std::uint16_t seen = flags.load(std::memory_order_acquire);
  while ((seen & (frame_claimed | frame_stolen)) == 0) {
    if (flags.compare_exchange_weak(seen, static_cast<std::uint16_t>(seen | bit), std::memory_order_acq_rel)) return true;
  }
  return false;
}

void Ring::pop(const FrameView& frame) noexcept {
  // release: we are done reading the frame before the producer may reuse it.
  control_->head.store(control_->head.load(std::memory_order_relaxed) + frame.span, std::memory_order_release);
}

void Ring::pop_to(std::uint64_t position) noexcept { control_->head.store(position, std::memory_order_release); }

bool Ring::empty() const noexcept {
  return control_->head.load(std::memory_order_relaxed) == control_->tail.load(std::memory_order_acquire);
}

void Ring::reset() noexcept {
  control_->head.store(0, std::memory_order_relaxed);
  control_->tail.store(0, std::memory_order_release);
  cached_head_ = 0;
}

}  // namespace procpool::detail
