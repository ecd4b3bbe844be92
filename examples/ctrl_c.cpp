// Ctrl-C during a long map.
//
//   ctrl_c              no handler: SIGINT ends the program, the zygote and
//                       the workers at once; nothing is left behind
//   ctrl_c --graceful   SIGINT is taken by a thread (sigwait), which calls
//                       pool.terminate(); main prints what had finished and
//                       returns 0
//   ctrl_c --handler    as --graceful, with a signal handler installed after
//                       the pool was built, which sets a flag main looks at
//
// It prints "running" once the map has started (tests/examples/ctrl_c_test.py
// sends SIGINT to the whole process group then, as a terminal's Ctrl-C does).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <pthread.h>
#include <thread>
#include <tuple>
#include <vector>

#include <procpool/procpool.hpp>

namespace {

// One item: 20 ms of work, then one more finished item in `done`.
int work(procpool::SharedArray<long> done, int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic_ref<long>(done[0]).fetch_add(1);
  return x;
}

std::vector<std::tuple<procpool::SharedArray<long>, int>> items(procpool::SharedArray<long> done, int n) {
  std::vector<std::tuple<procpool::SharedArray<long>, int>> v;
  for (int i = 0; i < n; ++i) v.emplace_back(done, i);
  return v;
}

volatile std::sig_atomic_t interrupted = 0;
void on_sigint(int) { interrupted = 1; }

}  // namespace

int main(int argc, char** argv) {
  const bool graceful = argc > 1 && std::strcmp(argv[1], "--graceful") == 0;
  const bool handler = argc > 1 && std::strcmp(argv[1], "--handler") == 0;
  procpool::SharedArray<long> done(1);
  constexpr int n = 3000;  // a minute on two workers: Ctrl-C comes long before the end

  if (graceful) {
    // Blocked before the pool exists: its threads and helper processes
    // inherit the mask, so SIGINT reaches only the sigwait below.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  procpool::Pool pool(2);
  std::thread waiter;
  if (graceful) {
    waiter = std::thread([&pool] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      int signal = 0;
      sigwait(&set, &signal);
      std::cout << "SIGINT: terminating the pool" << std::endl;
      pool.terminate();
    });
  }
  if (handler) std::signal(SIGINT, on_sigint);

  std::cout << "running" << std::endl;
  try {
    auto result = pool.starmap_async(work, items(done, n), 1);
    if (handler) {
      while (!result.wait(std::chrono::milliseconds(50))) {
        if (interrupted) {
          std::cout << "SIGINT: terminating the pool" << std::endl;
          pool.terminate();
        }
      }
    }
    const std::size_t count = result.get().size();
    std::cout << "finished all " << count << " items" << std::endl;
  } catch (const procpool::Error& e) {
    // terminate() fails what had not finished (PoolTerminated); a worker
    // that the terminal's SIGINT reached first fails its task (WorkerLost).
    std::cout << "interrupted: " << std::atomic_ref<long>(done[0]).load() << " of " << n << " items finished"
              << std::endl;
    std::cout << "error: " << e.what() << std::endl;
  }
  if (waiter.joinable()) {
    pthread_kill(waiter.native_handle(), SIGINT);  // no Ctrl-C came: let it end (terminate() again does nothing)
    waiter.join();
  }
  return 0;
}
