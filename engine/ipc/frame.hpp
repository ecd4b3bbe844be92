// The frame: the unit that travels through a ring.
#pragma once

#include <cstddef>
#include <cstdint>

namespace procpool::detail {

enum class FrameKind : std::uint16_t {
  padding = 1,  // fills the ring's end so the next frame starts at offset 0
  task = 2,     // parent to worker: a task payload (task_codec.hpp)
  stop = 3,     // parent to worker: exit after the tasks before this one
  result = 4,   // worker to parent: a result payload (run_payload(), engine/pool/worker.hpp)
  forget = 5,   // parent to worker: drop shared block `task_id`, released in the parent
  timing = 6,   // worker to parent, after a timed task's result: a TaskTiming
};

enum FrameFlags : std::uint16_t {
  // The payload is not in the ring: the frame holds its length (8 bytes) and
  // the bytes are in a memfd sent ahead on the worker's socket.
  frame_side_channel = 1,
  // Set by compare-and-swap, each at most once, never both: the worker
  // claims a task before starting it; the parent steals one not yet claimed
  // (to hand it to an idle worker). Whoever sets its bit first owns the task.
  frame_claimed = 2,
  frame_stolen = 4,
  // The payload is in the sender's payload arena: the frame holds an ArenaRef.
  frame_arena = 8,
  // On a task: time it (its worker sends a timing frame after its result).
  frame_timed = 16,
};

// When a timed task ran in its worker (CLOCK_MONOTONIC, the same in every process).
struct TaskTiming {
  std::int64_t started_ns;
  std::int64_t ended_ns;
};
static_assert(sizeof(TaskTiming) == 16);

// Where an arena payload is: checked against the arena's size before use.
struct ArenaRef {
  std::uint64_t offset;
  std::uint64_t size;
};
static_assert(sizeof(ArenaRef) == 16);

struct FrameHeader {
  std::uint32_t size;  // payload bytes that follow the header in the ring
  FrameKind kind;
  std::uint16_t flags;
  std::uint64_t task_id;
};
static_assert(sizeof(FrameHeader) == 16);

// Frames start on 16-byte boundaries so a header never wraps around the ring.
constexpr std::size_t frame_alignment = 16;
constexpr std::size_t frame_span(std::size_t payload) {
  return sizeof(FrameHeader) + ((payload + frame_alignment - 1) & ~(frame_alignment - 1));
}

}  // namespace procpool::detail
