// A task that SIGKILLs the worker rank it runs on.
//   default: under a plain mpirun, which ends the whole job when a rank dies;
//            rank 0 must not outlive it (the test checks the job ends with
//            the dead rank's status in bounded time, leaving no process behind).
//   recovery: under mpirun --enable-recovery, which lets the other ranks go on;
//            the task fails with WorkerLost and the pool keeps the other worker.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <procpool/mpi.hpp>
#include <thread>
#include <unistd.h>

namespace {

int kill_own_rank(int) {
  ::raise(SIGKILL);
  return 0;
}
int square(int x) { return x * x; }

}  // namespace

int main(int argc, char** argv) {
  procpool::mpi::Runtime mpi(argc, argv);
  const bool recovery = argc > 1 && std::strcmp(argv[1], "recovery") == 0;
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  procpool::mpi::Pool pool;
  std::printf("pool of %d\n", pool.size());
  auto doomed = pool.apply_async(kill_own_rank, 0);
  std::printf("submitted\n");
  try {
    doomed.get();
    std::printf("no error\n");
  } catch (const procpool::WorkerLost& e) {
    std::printf("WorkerLost: %s\n", e.what());
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
