// node_loss: how long rank 0 takes to fail the tasks of a lost rank, run by
// benchmarks/compare_cluster.py under `mpirun --enable-recovery`, one rank
// per simulated host (scripts/cluster.sh). Not a Google Benchmark: the loss
// is caused from outside, by the script, while this program waits.
//
//   node_loss DIR [--timeout S] [--hold S]
//
// Rank 0 gives every worker rank two long tasks (one running, one in its
// queue), waits until each rank has started one (each task leaves a marker
// file in DIR: the simulated hosts share this machine's filesystem), prints
//   ready rank 1 on node2 pid 123; rank 2 on node3 pid 456
// and waits. The script then kills a node's processes or takes its link
// down. The first task that fails with WorkerLost prints
//   lost_at_ns <CLOCK_REALTIME of the failure, ns>
//   WorkerLost: <what(), naming host and rank>
// (every namespace reads the same CLOCK_REALTIME, so the script subtracts
// its own reading at the loss). Then rank 0 creates DIR/release, which ends
// the surviving tasks early, waits for them and exits 0. If no task failed
// within --timeout seconds (default 15) it prints
//   not detected within 15 s
// and calls MPI_Abort (status 3), which kills the other ranks: the Runtime's
// end would wait for the lost rank's answers. (Open MPI 4.1's mpirun
// --enable-recovery then still does not end by itself: the script stops it.)
#include <mpi.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <procpool/mpi.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// The long task, on a worker rank: leaves "started.RANK.HOST.PID" in dir,
// then sleeps until dir/release appears or hold_ms have passed (20 ms naps:
// a sleeping rank, not a spinning one). Open MPI names the rank in the
// environment; this program needs no MPI header.
std::string hold(std::string dir, int hold_ms) {
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  const std::string me = std::string(rank ? rank : "?") + "." + host_name() + "." + std::to_string(::getpid());
  std::ofstream(fs::path(dir) / ("started." + me)).put('\n');
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms);
  while (std::chrono::steady_clock::now() < end && !fs::exists(fs::path(dir) / "release"))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return me;
}

// "started.RANK.HOST.PID" markers, by rank: {host, pid}.
std::map<int, std::pair<std::string, std::string>> started_ranks(const std::string& dir) {
  std::map<int, std::pair<std::string, std::string>> ranks;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("started.", 0) != 0) continue;
    const auto a = name.find('.', 8);
    const auto b = name.rfind('.');
    if (a == std::string::npos || b <= a) continue;
    ranks[std::atoi(name.substr(8, a - 8).c_str())] = {name.substr(a + 1, b - a - 1), name.substr(b + 1)};
  }
  return ranks;
}

// What the results' callbacks (on the pool's result thread) tell main.
struct Outcomes {
  std::mutex mutex;
  std::condition_variable changed;
  std::int64_t lost_at_ns = 0;  // the first WorkerLost
  std::string lost_what;
  int ended = 0;
  int lost = 0;
  int other_errors = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Outcomes out;  // before the Runtime: outlives every callback
  procpool::mpi::Runtime mpi(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  std::string dir;
  int timeout_s = 15;
  int hold_s = 30;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      timeout_s = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--hold") == 0 && i + 1 < argc) {
      hold_s = std::atoi(argv[++i]);
    } else {
      dir = argv[i];
    }
  }
  if (dir.empty() || timeout_s <= 0 || hold_s <= 0) {
    std::fprintf(stderr, "usage: mpirun ... node_loss DIR [--timeout S] [--hold S]\n");
    return 2;
  }
  procpool::mpi::Pool pool;
  const int tasks = 2 * pool.size();
  std::vector<procpool::AsyncResult<std::string>> results;
  for (int i = 0; i < tasks; ++i) {
    results.push_back(pool.apply_async(hold, dir, hold_s * 1000));
    results.back().then(
        [&](const std::string&) {
          std::lock_guard lock(out.mutex);
          ++out.ended;
          out.changed.notify_all();
        },
        [&](std::exception_ptr error) {
          const std::int64_t now = realtime_ns();
          std::lock_guard lock(out.mutex);
          ++out.ended;
          try {
            std::rethrow_exception(error);
          } catch (const procpool::WorkerLost& e) {
            if (out.lost++ == 0) {
              out.lost_at_ns = now;
              out.lost_what = e.what();
            }
          } catch (...) {
            ++out.other_errors;
          }
          out.changed.notify_all();
        });
  }

  // Every worker rank running one of them, or give up (a rank that never starts one).
  auto ranks = started_ranks(dir);
  for (int tries = 0; static_cast<int>(ranks.size()) < pool.size(); ++tries) {
    if (tries == 1500) {
      std::printf("not ready: %zu of %d ranks started a task within 30 s\n", ranks.size(), pool.size());
      std::fflush(stdout);
      MPI_Abort(MPI_COMM_WORLD, 4);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ranks = started_ranks(dir);
  }
  std::string ready = "ready";
  for (const auto& [rank, where] : ranks)
    ready += (rank == ranks.begin()->first ? " rank " : "; rank ") + std::to_string(rank) + " on " + where.first +
             " pid " + where.second;
  std::printf("%s\n", ready.c_str());

  std::unique_lock lock(out.mutex);
  if (!out.changed.wait_for(lock, std::chrono::seconds(timeout_s), [&] { return out.lost > 0; })) {
    std::printf("not detected within %d s\n", timeout_s);
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 3);
  }
  std::printf("lost_at_ns %lld\nWorkerLost: %s\n", static_cast<long long>(out.lost_at_ns), out.lost_what.c_str());
  std::ofstream(fs::path(dir) / "release").put('\n');
  // The surviving ranks' tasks end now; a lost rank's fail.
  const bool all = out.changed.wait_for(lock, std::chrono::seconds(timeout_s), [&] { return out.ended == tasks; });
  std::printf("tasks: %d, WorkerLost %d, other errors %d, ended %s\n", tasks, out.lost, out.other_errors,
              all ? "all" : "not all");
  lock.unlock();
  if (!all) {
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 5);
  }
  return 0;
}
