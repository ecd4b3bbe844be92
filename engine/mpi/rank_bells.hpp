// Doorbells between rank 0 and the worker ranks on its host, so that a side
// with nothing to do sleeps in the kernel until a message is on its way,
// instead of polling MPI with sleeps (Open MPI's shared-memory transport has
// no file descriptor to block on, and its blocking calls spin).
//
// Rank 0 makes a memfd of one Doorbell and message count per rank (rank 0's
// own: its manager thread's) and tells every rank its pid, descriptor and a random cookie; a
// rank on the same host maps it through /proc/PID/fd/FD and checks the
// cookie. A rank on another host, or one that cannot map it, has none and
// polls as before. A sender rings the receiver's bell after posting a
// message; the bell is the only thing shared, and no lock lives there.
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/ipc/doorbell.hpp"

namespace procpool::mpi::detail {

class RankBells {
 public:
  RankBells() = default;
  RankBells(const RankBells&) = delete;
  RankBells& operator=(const RankBells&) = delete;
  ~RankBells();

  // Collective over `comm` (every rank calls it, after MPI_Init): rank 0
  // makes the bells, the others map them if they can. Never throws: a rank
  // that cannot map them has none (mapped() is false there).
  void open(MPI_Comm comm, int rank, int ranks) noexcept;
  // Rank 0, once every rank has mapped them (or given up): closes the memfd,
  // so that no child process inherits it.
  void opened() noexcept;
  // Whether this rank has the bells.
  bool mapped() const noexcept { return boxes_ != nullptr; }
  // Rank `rank`'s bell. Only when mapped(); rank < the ranks given to open().
  procpool::detail::Doorbell& of(int rank) noexcept { return boxes_[rank].bell; }
  // How many messages have been posted to rank `rank` that it probes for
  // (not the pieces of one), counted by their senders after posting each:
  // while it has taken fewer, work is on its way and it does not sleep long.
  std::atomic<std::uint64_t>& posted(int rank) noexcept { return boxes_[rank].posted; }

 private:
  struct Box {
    procpool::detail::Doorbell bell;
    alignas(procpool::detail::cache_line) std::atomic<std::uint64_t> posted{0};
  };
  Box* boxes_ = nullptr;
  std::size_t bytes_ = 0;
  int fd_ = -1;
};

}  // namespace procpool::mpi::detail
