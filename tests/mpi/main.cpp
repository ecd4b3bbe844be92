// main() of the MPI test programs: every rank makes the Runtime; ranks 1..N-1
// serve tasks inside it, rank 0 returns from it and runs the doctest cases.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <procpool/mpi.hpp>

int main(int argc, char** argv) {
  // Small pieces, so the 64 MiB payload test goes through the multi-piece path.
  procpool::mpi::RuntimeOptions options;
  options.max_message = std::size_t{4} << 20;
  procpool::mpi::Runtime mpi(argc, argv, options);
  doctest::Context context(argc, argv);
  return context.run();
}
