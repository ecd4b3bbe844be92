// Whether rank 0 is still there, as a worker rank learns it. Open MPI ends
// the job when rank 0 dies, but not under mpirun --enable-recovery: there
// the worker ranks would serve forever and mpirun wait for them. So each
// worker rank holds a TCP connection to rank 0, on which rank 0 writes only
// a greeting: the kernel closes it when rank 0's process ends, however it
// ends. A worker rank then says so and leaves; one that rank 0 told to shut
// down (disarm()) leaves quietly. Costs no CPU while nothing happens: a
// thread on each side sleeps in the kernel.
//
// Only the process's end, not its host's: no keepalive. Open MPI sees a host
// go down (mpirun loses the host's daemon, or runs there itself and is gone
// too), and a rank cut off from rank 0 must stay quiet: its exit status,
// queued on a dead link by its Open MPI daemon, keeps that daemon's TCP
// keepalive from ever firing, and with it the end of the job (seen: mpirun
// waited past 90 s instead of ending the job at 30 s).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "engine/mpi/heartbeat.hpp"

namespace procpool::mpi::detail {

// Where rank 0 listens (port 0: it does not), and the token it greets with,
// so that a worker rank knows it reached this job's rank 0. Fixed layout:
// broadcast at start (every rank runs the same build).
struct LifelineAddress {
  HeartbeatAddress at;
  std::uint64_t token = 0;
};

// Rank 0's side: opens a listening socket, and a thread that greets each
// connection and keeps it open until the process ends. Never throws: without
// a socket the address's port is 0, and the worker ranks do without.
LifelineAddress start_lifeline_listener() noexcept;

// A worker rank's side: a thread connects to rank 0 and waits for the
// connection to end; then, unless disarm() was called meanwhile (or within
// a grace period: rank 0's goodbye over MPI may still be on its way), it
// prints which rank lost rank 0 and ends the process with status 1. Never
// throws: a rank that cannot reach rank 0 this way does without.
class Lifeline {
 public:
  Lifeline(const LifelineAddress& rank0, int rank) noexcept;
  Lifeline(const Lifeline&) = delete;
  Lifeline& operator=(const Lifeline&) = delete;
  // Rank 0 said goodbye: the connection's end is expected now.
  void disarm() noexcept;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the thread, which outlives this object
};

}  // namespace procpool::mpi::detail
