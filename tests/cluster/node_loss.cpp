// A node lost in the middle of an imap (tests/cluster/meson.build): rank 0 on
// node1, worker ranks on node2 and node3. Once the first results are in it
// prints "mid-map"; the test then kills node3's rank or takes node3's link
// down (run_on_cluster.py --on).
//   Under mpirun --enable-recovery, only the task node3 was running fails,
//   with WorkerLost naming the host and rank; the others finish on node2, and
//   the pool goes on with it.
//   Without it, rank 0 says which node was lost and the job ends.
#include <unistd.h>

#include <cstdio>
#include <procpool/mpi.hpp>
#include <ranges>
#include <set>
#include <string>
#include <thread>

namespace {

int slow_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return x * x;
}
int square(int x) { return x * x; }
std::string host_of(int) {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  procpool::mpi::Pool pool;
  std::printf("pool of %d\n", pool.size());
  std::set<std::string> hosts;
  for (const std::string& h : pool.map(host_of, std::views::iota(0, 8), 1)) hosts.insert(h);
  std::printf("hosts:");
  for (const std::string& h : hosts) std::printf(" %s", h.c_str());
  std::printf("\n");

  // Every item ends exactly once: with its value, or with WorkerLost.
  constexpr int tasks = 24;
  int ok = 0, lost = 0, wrong = 0, other = 0;
  std::string first_lost;
  auto results = pool.imap(slow_square, std::views::iota(0, tasks), 1);
  for (int i = 0; i < tasks; ++i) {
    if (i == 4) std::printf("mid-map\n");
    try {
      const auto v = results.next();
      if (v && *v == i * i) {
        ++ok;
      } else {
        ++wrong;
      }
    } catch (const procpool::WorkerLost& e) {
      if (lost++ == 0) first_lost = e.what();
    } catch (const std::exception& e) {
      ++other;
      std::printf("other error: %s\n", e.what());
    }
  }
  const bool at_end = !results.next().has_value();
  std::printf("results: ok %d, lost %d, wrong %d, other %d, end %s\n", ok, lost, wrong, other, at_end ? "yes" : "no");
  if (lost > 0) std::printf("WorkerLost: %s\n", first_lost.c_str());
  // The survivor takes what comes next.
  try {
    int sum = 0;
    for (int v : pool.map(square, std::vector<int>{1, 2, 3, 4})) sum += v;
    std::printf("after: %d\n", sum);
  } catch (const std::exception& e) {
    std::printf("after: %s\n", e.what());
  }
  return 0;
}
