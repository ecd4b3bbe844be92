// procpool::mpi misused, in a process started without mpirun (an MPI
// singleton): every mistake is a clear error, not a hang.
#include <doctest/doctest.h>

#include <procpool/mpi.hpp>

TEST_CASE("mpi - a Pool needs a Runtime" * doctest::timeout(30)) {
  CHECK_THROWS_WITH_AS(procpool::mpi::Pool{}, doctest::Contains("no procpool::mpi::Runtime exists"),
                       procpool::ValueError);
}

TEST_CASE("mpi - without mpirun there is no worker rank; one Runtime per process" * doctest::timeout(60)) {
  procpool::mpi::Runtime mpi;
  CHECK(mpi.rank() == 0);
  CHECK(mpi.ranks() == 1);
  CHECK_THROWS_WITH_AS(procpool::mpi::Pool{}, doctest::Contains("there is no worker rank"), procpool::ValueError);
  CHECK_THROWS_WITH_AS(procpool::mpi::Runtime{}, doctest::Contains("already initialized"), procpool::Error);
  int argc = 0;
  char** argv = nullptr;
  procpool::mpi::RuntimeOptions too_large;
  too_large.max_message = std::size_t{1} << 31;
  CHECK_THROWS_AS(procpool::mpi::Runtime(argc, argv, too_large), procpool::ValueError);
  procpool::mpi::RuntimeOptions too_short;
  too_short.heartbeat_timeout = std::chrono::milliseconds(50);
  CHECK_THROWS_WITH_AS(procpool::mpi::Runtime(argc, argv, too_short), doctest::Contains("heartbeat_timeout"),
                       procpool::ValueError);
}
