// A single-producer single-consumer ring of variable-size frames in shared memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/ipc/frame.hpp"
#include "engine/sys/constants.hpp"

namespace procpool::detail {

// The indices, each on its own cache line. head and tail are byte counts that
// only grow (offset = count mod capacity), so "empty" and "full" never mix up.
// No lock: a side that dies leaves indices that are still consistent.
struct RingControl {
  alignas(cache_line) std::atomic<std::uint64_t> head{0};  // written by the consumer only
  alignas(cache_line) std::atomic<std::uint64_t> tail{0};  // written by the producer only
};

// A frame as the consumer sees it. The header is a copy, read once, so a
// writer that scribbles over shared memory cannot change it after validation.
struct FrameView {
  FrameHeader header;
  const char* payload;
  std::uint64_t span;  // bytes this frame (and any padding before it) occupies
};

// A process-local view of one ring; each side builds its own over the same
// memory. Either the producer or the consumer members are used by one thread.
class Ring {
 public:
  Ring() = default;
  Ring(RingControl* control, char* data, std::size_t capacity) noexcept;

  std::size_t capacity() const noexcept { return capacity_; }
  // The largest payload a frame in this ring may carry.
  std::size_t max_payload() const noexcept { return capacity_ / 4; }

  // Producer: contiguous room for a payload at the tail, after its header;
  // write it there and commit_in_place(). May be 0.
  char* window(std::size_t& room) noexcept;
  void commit_in_place(FrameKind kind, std::uint16_t flags, std::uint64_t task_id, std::size_t size) noexcept;
  // Producer: copies a frame in (wrapping with a padding frame when needed).
  // Returns false if there is not enough free space now.
  bool push(FrameKind kind, std::uint16_t flags, std::uint64_t task_id, const void* payload,
            std::size_t size) noexcept;
  bool has_room_for(std::size_t size) noexcept;

  // Consumer: the next frame, skipping padding. `corrupt` is set when the
  // bytes at the head are not a valid frame (the ring cannot be trusted past it).
  enum class Peek { empty, frame, corrupt };
  Peek peek(FrameView& frame) const noexcept;
  // The frame at `position` (head_position() plus the spans of the frames
  // before it), so a batch can be read before any of it is popped.
  Peek peek_from(std::uint64_t position, FrameView& frame) const noexcept;
  void pop(const FrameView& frame) noexcept;
  // Releases every frame before `position` to the producer at once.
  void pop_to(std::uint64_t position) noexcept;
  bool empty() const noexcept;

  // Sets `bit` (frame_claimed or frame_stolen) in the frame's header in the
  // ring if neither is set yet. Returns whether this call set it.
  bool try_mark(const FrameView& frame, std::uint16_t bit) noexcept;
  // The frame's flags as they are in the ring now (marks included), not as copied by peek.
  std::uint16_t marks(const FrameView& frame) const noexcept;

  // Either side, when the other is known to be gone.
  void reset() noexcept;
  // Walks the unconsumed frames from the head without popping (for recovery
  // after the consumer died). Returns false at the end or at a corrupt frame.
  bool peek_at(std::uint64_t position, FrameView& frame) const noexcept;
  std::uint64_t head_position() const noexcept { return control_->head.load(std::memory_order_acquire); }

 private:
  bool reserve(std::size_t span, std::size_t& padding) noexcept;
  void write_header(std::uint64_t position, FrameKind kind, std::uint16_t flags, std::uint64_t task_id,
                    std::size_t size) noexcept;

  RingControl* control_ = nullptr;
  char* data_ = nullptr;
  std::size_t capacity_ = 0;  // a power of two
  std::uint64_t cached_head_ = 0;  // producer's last look at head: saves a shared cache-line read
};

}  // namespace procpool::detail
