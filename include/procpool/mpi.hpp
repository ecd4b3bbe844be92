/// \file
/// procpool::mpi: the same pool across hosts, on MPI (Open MPI). Link with
/// procpool-mpi (pkg-config). Not included by procpool.hpp: a program that
/// only uses the local pool needs no MPI.
///
/// \code
/// int square(int x) { return x * x; }
///
/// int main(int argc, char** argv) {
///   procpool::mpi::Runtime mpi(argc, argv);  // ranks 1..N-1 serve tasks here and exit
///   procpool::mpi::Pool pool;                // rank 0: every other rank is a worker
///   for (int v : pool.map(square, std::vector{1, 2, 3})) std::cout << v << '\n';
/// }
/// \endcode
///
/// Started as `mpirun -n N ./app`. Every rank runs the same executable (the
/// same build): a task's callable is named as in the local pool, by build-id
/// and offset, and a rank of another build fails the task with a
/// SerializationError instead of calling the wrong code.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "procpool/procpool.hpp"

/// The pools on MPI ranks: Runtime, then Pool (library procpool-mpi).
namespace procpool::mpi {

/// What Runtime(argc, argv, options) sets up; every field has a default.
struct RuntimeOptions {
  /// The largest single MPI message, from 80 bytes to INT_MAX (MPI's count
  /// limit); a larger payload travels in pieces of this size.
  std::size_t max_message = std::size_t{1} << 30;
  /// How long a worker rank on another host may stay silent, while it has
  /// tasks out, before rank 0 takes it for lost (its node died or was cut
  /// off): rank 0 pings it over UDP every quarter of this time, and a thread
  /// of the rank answers whatever its task is doing. Lost under `mpirun
  /// --enable-recovery`: its running tasks fail with WorkerLost naming its
  /// host and rank, the ones it had not started go to other ranks, and the pool
  /// goes on without it. Lost otherwise: rank 0 says which and aborts the
  /// job. A loss is seen within this time plus about 10 ms. From 100 ms.
  std::chrono::milliseconds heartbeat_timeout{2000};
};

/// MPI for this process, from the first line of main to the end of its scope.
///
/// The constructor initializes MPI (MPI_Init_thread, with the thread level
/// rank 0's manager thread needs). On rank 0 it returns and the program goes
/// on. On every other rank it never returns: the rank serves tasks for rank 0's
/// pools until rank 0's Runtime ends, then finalizes MPI and calls
/// std::exit(0), so nothing after it in main runs there (and nothing declared
/// before it in main is destroyed there: declare it first).
///
/// The destructor (rank 0) tells the workers to leave, once every task they
/// were given has answered, and finalizes MPI. Pools should end before it; one
/// still running is terminated. One Runtime per process. Build and destroy it
/// on one thread (main's); rank() and ranks() are thread-safe.
class Runtime {
 public:
  /// As Runtime(argc, argv), without handing the command line to MPI.
  Runtime();
  /// Initializes MPI and, on every rank but 0, serves tasks and exits (see
  /// above). Blocks until every rank has joined in. Throws ValueError if
  /// options.max_message is out of range, Error if MPI is already initialized
  /// (one Runtime per process) or an MPI call fails; aborts the whole job
  /// (MPI_Abort) if MPI cannot give the thread level it needs.
  Runtime(int& argc, char**& argv, RuntimeOptions options = {});
  /// Not copyable: there is one MPI per process.
  Runtime(const Runtime&) = delete;
  /// Not copyable: there is one MPI per process.
  Runtime& operator=(const Runtime&) = delete;
  /// Terminates the pools still running, tells the worker ranks to leave once
  /// every task they were given has answered, and finalizes MPI. Blocks until
  /// then. Never throws.
  ~Runtime();

  /// This process's rank: 0 on the one where the constructor returns. Never
  /// blocks or throws. Thread-safe.
  int rank() const noexcept;
  /// The number of ranks, rank 0 included. Never blocks or throws. Thread-safe.
  int ranks() const noexcept;

  /// The implementation, in the procpool-mpi library; not part of the API.
  class Impl;

 private:
  void start(int* argc, char*** argv, RuntimeOptions options);

  std::unique_ptr<Impl> impl_;
};

/// A pool whose workers are the MPI ranks 1..N-1, with TaskPool's surface:
/// apply_async, apply, map, map_async, starmap, imap, imap_unordered, close,
/// join, terminate, size, the same AsyncResult and the same errors.
///
/// Rank 0 keeps two tasks in flight per worker rank (one running, the next
/// waiting in MPI's queue), or about a millisecond's worth of tasks it has
/// measured as short there (up to 256, several to a message), and the rest
/// in a backlog; map-family items travel in chunks. Pools may follow one another (and run at once): the ranks stay
/// for the next pool until the Runtime ends. terminate() fails unfinished
/// results with PoolTerminated at once and makes the ranks drop the pool's
/// queued tasks; a task already running on a rank runs to its end (killing it
/// would kill the rank, and Open MPI ends the whole job when a rank dies), and
/// its result is dropped. Every member but the constructor and the
/// destructor is thread-safe.
///
/// AsyncResult::cancel() returns false only if the task has finished; else
/// the result fails with Cancelled at once and it returns true. A task still
/// queued on rank 0 is never sent; one sent to a rank but not started there is
/// skipped by the rank; one running on a rank runs to its end and its result
/// is dropped (as for terminate(): a rank cannot be stopped without killing it,
/// and this_task::stop_requested() stays false there). Rank 0 cannot tell the
/// last two apart when cancel() is called: the rank learns of the cancel after
/// the task's message. join() does not wait for a cancelled task.
///
/// TaskOptions: `priority` orders the tasks queued on rank 0 (those of every
/// mpi::Pool: one queue feeds the ranks), higher first, equal ones in
/// submission order; the tasks in flight per rank are already out of it (two
/// while its tasks are not known to be short).
/// `retries` re-runs a task, on another rank, when its rank is found dead
/// (WorkerLost, under mpirun --enable-recovery: its pid() is the rank's pid;
/// signal() 0, exit_status() -1 and an empty backtrace(), as rank 0 cannot
/// learn how the rank died); such a task keeps its payload
/// on rank 0 until answered. `timeout` and `soft_timeout` do not apply (a task
/// on a rank cannot be killed without the rank, nor asked to stop): a non-zero
/// one makes apply_async/apply throw ValueError, as a negative `retries` does.
///
/// share() works as on a local pool, for any pool's handles: the value is
/// serialized once on rank 0; its bytes go to a rank once (ahead of the first
/// task there that carries the handle, in pieces when large), each rank
/// decodes it at most once, and once the last handle and the last task
/// carrying it are gone on rank 0, the ranks that have it drop it (a rank
/// found dead gets nothing more). Like Ray's object store or Dask's scatter,
/// it is a read-only broadcast. A SharedArray is local-only (ranks cannot map
/// rank 0's memory): a task carrying one fails with SerializationError.
class Pool : public TaskPool {
 public:
  /// Every rank but 0 is a worker. Never blocks. Throws ValueError if no
  /// Runtime exists, or there is no other rank (started without mpirun, or
  /// with -n 1).
  Pool();
};

}  // namespace procpool::mpi
