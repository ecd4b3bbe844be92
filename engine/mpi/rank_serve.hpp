// A worker rank's serving loop (rank_serve.cpp).
#pragma once

#include <mpi.h>

#include <cstddef>

#include "engine/mpi/rank_bells.hpp"

namespace procpool::mpi::detail {

// A worker rank: takes tasks from rank 0 in order, runs each as a local pool
// worker does, and sends the results back, until rank 0 says to leave.
// Returns whether rank 0 saw a worker rank die (then MPI_Finalize must be skipped).
bool serve(MPI_Comm comm, std::size_t max_message, RankBells& bells, int rank);

}  // namespace procpool::mpi::detail
