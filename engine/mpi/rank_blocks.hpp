// A worker rank's copies of the shared values rank 0 sent: each arrives once,
// ahead of the first task there that names it, is decoded at most once (the
// block keeps its value), and is dropped when rank 0 says it released it.
// Only the serving thread touches them.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace procpool::mpi::detail {

// Makes Shared<T>'s load() on this rank find the values received here.
void serve_shared_blocks() noexcept;

// Takes a tag_share message (`message`, its header) and the value's pieces
// that follow it. Throws Error if it is malformed or MPI fails.
void receive_shared_block(MPI_Comm comm, const std::vector<char>& message, std::vector<MPI_Request>& requests);

// Drops the value a tag_forget `message` names; a running task's handle
// keeps it until the task returns.
void forget_shared_block(const std::vector<char>& message) noexcept;

}  // namespace procpool::mpi::detail
