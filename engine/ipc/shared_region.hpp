// The pool's shared memory: anonymous, mapped before any fork, never named.
#pragma once

#include <atomic>
#include <boost/interprocess/mapped_region.hpp>
#include <cstddef>
#include <cstdint>

#include "engine/ipc/crash_record.hpp"
#include "engine/ipc/doorbell.hpp"
#include "engine/ipc/ring.hpp"
#include "engine/sys/constants.hpp"

namespace procpool::detail {

// Room for the message of an initializer that threw, terminator included.
inline constexpr std::size_t initializer_error_bytes = 256;

// Per worker slot, shared between the parent and that slot's worker.
struct SlotControl {
  // The task the worker is running (0: none). Set before the task's first
  // byte is read, cleared after its result is published: a worker that dies
  // with this set lost exactly that task.
  alignas(cache_line) std::atomic<std::uint64_t> running_task{0};
  std::atomic<std::int64_t> started_ns{0};  // CLOCK_MONOTONIC when running_task was set
  // The task the parent asks to stop (cancel(), or its soft time-out): it
  // applies while running_task equals it, so it never stops the next task.
  // Written by the parent only; reset with the slot's worker.
  alignas(cache_line) std::atomic<std::uint64_t> stop_task{0};
  Doorbell stop_bell;  // rung after stop_task changes; the worker's stop watcher sleeps here
  // The task whose worker the parent is about to kill (time-out, cancel
  // grace). Set before it checks that the task still runs; a worker that
  // finishes that task sees it and leaves instead of starting the next one,
  // which the kill would otherwise hit. Written by the parent only.
  std::atomic<std::uint64_t> kill_for{0};
  // Arena results the parent has read (written by the parent only): the
  // worker reuses their blocks (ResultBlocks). Reset with the slot's worker.
  alignas(cache_line) std::atomic<std::uint64_t> arena_results_taken{0};
  Doorbell tasks_bell;                      // the worker sleeps here for tasks
  Doorbell results_space_bell;              // the worker sleeps here for room in its result ring
  RingControl tasks;
  RingControl results;
  // Set by a worker whose initializer threw, after it wrote the message
  // below; read and cleared by the parent when that worker has exited.
  // Untrusted bytes: the reader bounds and terminates them.
  alignas(cache_line) std::atomic<bool> initializer_failed{false};
  char initializer_error[initializer_error_bytes] = {};
  // The stack of a worker that crashed (engine/ipc/crash_record.hpp).
  alignas(cache_line) CrashRecord crash;
};

struct PoolControl {
  Doorbell parent_bell;  // the parent's result thread sleeps here; workers ring it
  // Parent threads now pumping result rings themselves (waiting in get()):
  // while non-zero, workers need not ring parent_bell after a result.
  alignas(cache_line) std::atomic<std::uint32_t> pumpers{0};
  // Bumped (then parent_bell rung) by a worker that emptied its task ring by
  // skipping frames (cancelled, stolen, forget): room that no result
  // announces, which a task waiting in the backlog may need.
  std::atomic<std::uint32_t> tasks_room_freed{0};
  // Workers that have finished their initializer, all slots together: the
  // parent tells initializer failures in a row from ones with a start between.
  alignas(cache_line) std::atomic<std::uint64_t> workers_initialized{0};
};

// One anonymous shared mapping (Boost.Interprocess: MAP_SHARED |
// MAP_ANONYMOUS): inherited by the zygote and every worker it forks, and gone
// with the last process that maps it, so nothing can be left behind in
// /dev/shm, whoever dies. No lock lives in it.
class SharedRegion {
 public:
  SharedRegion(int slots, std::size_t ring_capacity);
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  PoolControl& pool() const noexcept { return *pool_; }
  SlotControl& slot(int i) const noexcept;
  Ring task_ring(int i) const noexcept;
  Ring result_ring(int i) const noexcept;
  int slots() const noexcept { return slots_; }
  // The whole mapping.
  void* address() const noexcept { return mapping_.get_address(); }
  std::size_t size() const noexcept { return mapping_.get_size(); }

 private:
  char* slot_base(int i) const noexcept { return base_ + slot_offset_ + static_cast<std::size_t>(i) * slot_stride_; }

  boost::interprocess::mapped_region mapping_;
  char* base_ = nullptr;
  int slots_ = 0;
  std::size_t ring_capacity_ = 0;
  std::size_t slot_offset_ = 0;
  std::size_t slot_stride_ = 0;
  PoolControl* pool_ = nullptr;
};

}  // namespace procpool::detail
