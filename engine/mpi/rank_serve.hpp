// A worker rank's serving loop (rank_serve.cpp).
#pragma once

#include <mpi.h>

#include <cstddef>

#include "engine/mpi/heartbeat.hpp"
#include "engine/mpi/rank_bells.hpp"

namespace procpool::mpi::detail {

// A worker rank: takes tasks from rank 0 in order, runs each as a local pool
// worker does, and sends the results back, until rank 0 says to leave.
// Returns whether rank 0 saw a worker rank die (then MPI_Finalize must be skipped).
// `remote`: the bell rank 0 rings over UDP, where `bells` are not mapped (or null).
bool serve(MPI_Comm comm, std::size_t max_message, RankBells& bells, int rank, RemoteBell* remote);

}  // namespace procpool::mpi::detail
