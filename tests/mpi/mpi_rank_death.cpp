// A task that SIGKILLs the worker rank it runs on.
//   default: under a plain mpirun, which ends the whole job when a rank dies;
//            rank 0 must not outlive it (the test checks the job ends with
//            the dead rank's status in bounded time, leaving no process behind).
//   recovery: under mpirun --enable-recovery, which lets the other ranks go on;
//            the task fails with WorkerLost and the pool keeps the other worker.
//   retry:   under mpirun -n 5 --enable-recovery: TaskOptions::retries. A task
//            that kills its first rank succeeds on another; one that kills
//            every rank it runs on fails after 1 + retries attempts.
//   rank0:   under mpirun --enable-recovery, rank 0 SIGKILLs itself mid-map:
//            the worker ranks, mid-task, say they lost rank 0 and leave, so
//            the job ends (Open MPI tells them nothing in that mode).
#include <fcntl.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <procpool/mpi.hpp>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

int kill_own_rank(int) {
  ::raise(SIGKILL);
  return 0;
}
int square(int x) { return x * x; }
// What rank 0 knows of the death: the rank's pid (the one what() names), nothing more.
void print_members(const procpool::WorkerLost& e) {
  const std::string pid = "(pid " + std::to_string(e.pid()) + " ";
  const bool named = e.pid() > 0 && std::string(e.what()).find(pid) != std::string::npos;
  std::printf("WorkerLost members: pid %s, signal %d, exit status %d, backtrace %zu bytes\n", named ? "named" : "wrong",
              e.signal(), e.exit_status(), e.backtrace().size());
}
// Kills its rank unless `marker` exists, which it creates first: so it dies once.
int kill_first_rank(std::string marker, int value) {
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    ::raise(SIGKILL);
  }
  return value;
}

int slow_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x * x;
}

int rank0_dies(procpool::mpi::Pool& pool) {
  int seen = 0;
  for (const int v : pool.imap(slow_square, std::vector<int>(24, 3))) {
    if (v == 9 && ++seen == 3) {
      std::printf("rank 0 dies mid-map\n");
      std::fflush(stdout);
      ::raise(SIGKILL);
    }
  }
  std::printf("still running\n");
  return 0;
}

int retry(procpool::mpi::Pool& pool) {
  const std::string marker = "/tmp/procpool_mpi_retry_" + std::to_string(::getpid());
  std::remove(marker.c_str());
  const int value = pool.apply(procpool::TaskOptions{.retries = 1}, kill_first_rank, marker, 42);
  std::remove(marker.c_str());
  std::printf("retried: %d\n", value);
  try {
    pool.apply(procpool::TaskOptions{.retries = 1}, kill_own_rank, 0);
    std::printf("no error\n");
  } catch (const procpool::WorkerLost& e) {
    std::printf("WorkerLost: %s\n", e.what());
    print_members(e);
  }
  int sum = 0;
  for (int v : pool.map(square, std::vector<int>{1, 2, 3, 4})) sum += v;
  std::printf("after: %d\n", sum);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);
  const bool recovery = argc > 1 && std::strcmp(argv[1], "recovery") == 0;
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  procpool::mpi::Pool pool;
  std::printf("pool of %d\n", pool.size());
  if (argc > 1 && std::strcmp(argv[1], "retry") == 0) return retry(pool);
  if (argc > 1 && std::strcmp(argv[1], "rank0") == 0) return rank0_dies(pool);
  auto doomed = pool.apply_async(kill_own_rank, 0);
  std::printf("submitted\n");
  try {
    doomed.get();
    std::printf("no error\n");
  } catch (const procpool::WorkerLost& e) {
    std::printf("WorkerLost: %s\n", e.what());
    print_members(e);
  }
  if (!recovery) {
    // mpirun ends the job before this: waiting here proves it does not need us.
    std::this_thread::sleep_for(std::chrono::seconds(60));
    std::printf("still running\n");
    return 0;
  }
  int sum = 0;
  for (int v : pool.map(square, std::vector<int>{1, 2, 3, 4})) sum += v;
  std::printf("after: %d\n", sum);
  return 0;
}
