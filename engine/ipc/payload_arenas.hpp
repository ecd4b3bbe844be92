// Address space for large payloads, reserved once per pool and shared by the
// parent and every worker: one anonymous MAP_SHARED | MAP_NORESERVE mapping
// made before any fork, so every worker (replacements too) inherits it and
// nothing is ever named or passed. Pages cost memory only once touched, and
// stay touched ("warm") for the next payload until given back with forget().
//
//   [ task arena: the parent writes, workers read ][ result arena 0 ] ... [ result arena N-1 ]
//
// Who allocates in each arena keeps the bookkeeping in its own memory
// (ExtentAllocator): the parent for the task arena, worker i for result arena i.
#pragma once

#include <cstddef>
#include <span>

namespace procpool::detail {

// Address space reserved per pool (it costs memory only where touched): a
// payload larger than its arena's free room goes in a memfd of its own.
inline constexpr std::size_t task_arena_bytes = std::size_t{64} << 30;
inline constexpr std::size_t result_arena_bytes = std::size_t{16} << 30;
// The lowest bytes of each arena whose pages stay touched between payloads:
// room for a few large payloads in flight at memcpy speed; above it, pages
// are given back once free, so a rare huge payload does not pin its memory.
inline constexpr std::size_t payload_warm_bytes = std::size_t{64} << 20;

class PayloadArenas {
 public:
  // Reserves the arenas; if the system refuses (strict overcommit), small
  // ones (64 MiB each). Throws procpool::Error if even those cannot be had.
  PayloadArenas(int workers, std::size_t task_bytes, std::size_t result_bytes);
  PayloadArenas(const PayloadArenas&) = delete;
  PayloadArenas& operator=(const PayloadArenas&) = delete;
  ~PayloadArenas();

  std::span<char> tasks() const noexcept { return {base_, task_bytes_}; }
  // The whole mapping.
  std::span<char> mapping() const noexcept { return {base_, size_}; }
  std::span<char> results(int worker) const noexcept;

  // In worker `worker`, right after it starts: the task arena becomes
  // read-only and the other workers' result arenas inaccessible, so a bug in
  // one task cannot scribble over another's payload.
  void restrict_to(int worker) const noexcept;
  // Gives the pages of [data, data + size) back to the system (they read as
  // zeros afterwards). For ranges past the warm limit once they are free.
  static void forget(char* data, std::size_t size) noexcept;
  // Faults in [data, data + size) with one system call instead of a fault per page.
  static void populate(char* data, std::size_t size) noexcept;

 private:
  char* base_ = nullptr;
  std::size_t size_ = 0;
  std::size_t task_bytes_ = 0;
  std::size_t result_bytes_ = 0;
  int workers_ = 0;
};

}  // namespace procpool::detail
