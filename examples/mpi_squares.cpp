// The quick-start on MPI: `mpirun -n 3 ./mpi_squares` makes ranks 1 and 2 the
// workers of rank 0's pool. sum_of_squares() is written against TaskPool&, so
// the same function runs on the local pool too (`./mpi_squares --local`).
#include <procpool/mpi.hpp>

#include <cstring>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <unistd.h>
#include <vector>

namespace {

int square(int x) { return x * x; }
int rank_pid(int) { return static_cast<int>(::getpid()); }

long sum_of_squares(procpool::TaskPool& pool, int n) {
  std::vector<int> xs(static_cast<std::size_t>(n));
  std::iota(xs.begin(), xs.end(), 0);
  const std::vector<int> squares = pool.map(square, xs);
  return std::accumulate(squares.begin(), squares.end(), 0L);
}

}  // namespace

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);  // ranks 1..N-1 serve tasks here and never return
  const bool local = argc > 1 && std::strcmp(argv[1], "--local") == 0;

  procpool::mpi::Pool pool;
  std::cout << "workers: " << pool.size() << '\n';
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
  for (auto& r : results) std::cout << r.get() << ' ';
  std::cout << '\n';
  std::cout << "rank 0 pid " << ::getpid() << ", a task ran in pid " << pool.apply(rank_pid, 0) << '\n';
  try {
    pool.apply([](int x) -> int { throw std::out_of_range("no item " + std::to_string(x)); }, 7);
  } catch (const std::out_of_range& e) {
    std::cout << "out_of_range: " << e.what() << '\n';
  }
  std::cout << "sum of squares below 1000 (MPI): " << sum_of_squares(pool, 1000) << '\n';
  if (local) {
    procpool::Pool here(2);
    std::cout << "sum of squares below 1000 (local): " << sum_of_squares(here, 1000) << '\n';
  }
}  // ~Pool(): close + join; ~Runtime(): the worker ranks leave, MPI ends
