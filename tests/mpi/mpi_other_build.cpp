// Built twice, the second time with PROCPOOL_TEST_OTHER_BUILD: started as
// `mpirun -n 1 first : -n 2 second`, rank 0 and its workers run different
// builds, and every task must fail with a clear SerializationError instead of
// calling whatever sits at the same offset in the other build.
#include <doctest/doctest.h>

#include <procpool/mpi.hpp>

namespace {

int square(int x) { return x * x; }

#ifdef PROCPOOL_TEST_OTHER_BUILD
// Makes the second executable's bytes, and so its build-id, differ.
volatile int other_build_marker = 7;
int use_marker() { return other_build_marker; }
[[maybe_unused]] const int marker_used = use_marker();
#endif

}  // namespace

TEST_CASE("mpi - a rank running another build fails tasks with a clear error" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  CHECK_THROWS_WITH_AS(pool.apply(square, 3), doctest::Contains("different build"), procpool::SerializationError);
  CHECK_THROWS_WITH_AS(pool.apply([](int x) { return x + 1; }, 3), doctest::Contains("different build"),
                       procpool::SerializationError);
  CHECK_THROWS_WITH_AS(pool.map(square, std::vector<int>{1, 2, 3, 4}), doctest::Contains("different build"),
                       procpool::SerializationError);
  // The ranks stay: every later task fails the same way, none hangs.
  CHECK_THROWS_AS(pool.apply(square, 5), procpool::SerializationError);
}
