// Building, closing, joining, terminating and destroying a pool, and what it leaves behind.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <procpool/procpool.hpp>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int spin_forever() {
  volatile unsigned long spins = 0;
  for (;;) spins = spins + 1;
}
int ignore_sigterm_and_sleep() {
  ::signal(SIGTERM, SIG_IGN);
  ::pause();
  return 0;
}
int identity(int x) { return x; }

int initialized = 0;
void set_initialized() { initialized = 1234; }
int read_initialized() { return initialized; }

}  // namespace

TEST_CASE("lifecycle - size and worker_pids describe distinct live worker processes" * doctest::timeout(30)) {
  procpool::Pool pool(3);
  CHECK(pool.size() == 3);
  const auto pids = pool.worker_pids();
  REQUIRE(pids.size() == 3);
  for (pid_t pid : pids) {
    CHECK(pid != ::getpid());
    CHECK(test_support::alive(pid));
  }
  CHECK(std::set<pid_t>(pids.begin(), pids.end()).size() == 3);

  procpool::Pool defaults;
  CHECK(defaults.size() == procpool::cpu_count());
  CHECK(procpool::cpu_count() >= 1);
  procpool::PoolOptions options;
  options.processes = 2;
  CHECK(procpool::Pool(options).size() == 2);
}

TEST_CASE("lifecycle - close then join runs every queued task first" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(sleep_ms, 5));
  const auto pids = pool.worker_pids();
  pool.close();
  pool.join();
  for (auto& r : results) {
    CHECK(r.ready());
    CHECK(r.get() == 5);
  }
  for (pid_t pid : pids) CHECK_FALSE(test_support::alive(pid));
}

TEST_CASE("lifecycle - the destructor of a running pool closes and joins, losing nothing" * doctest::timeout(30)) {
  std::vector<procpool::AsyncResult<int>> results;
  {
    procpool::Pool pool(2);
    for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(sleep_ms, 10));
  }
  for (auto& r : results) CHECK(r.get() == 10);
}

TEST_CASE("lifecycle - terminate fails unfinished tasks with PoolTerminated and never hangs" * doctest::timeout(30)) {
  procpool::Pool pool(3);
  const auto pids = pool.worker_pids();
  auto sleeping = pool.apply_async(sleep_ms, 60000);
  auto spinning = pool.apply_async(spin_forever);
  auto deaf = pool.apply_async(ignore_sigterm_and_sleep);
  std::vector<procpool::AsyncResult<int>> queued;
  for (int i = 0; i < 100; ++i) queued.push_back(pool.apply_async(identity, i));
  std::this_thread::sleep_for(200ms);  // let the three start
  const auto start = std::chrono::steady_clock::now();
  pool.terminate();
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_THROWS_WITH_AS(sleeping.get(), doctest::Contains("terminate"), procpool::PoolTerminated);
  CHECK_THROWS_AS(spinning.get(), procpool::PoolTerminated);
  CHECK_THROWS_AS(deaf.get(), procpool::PoolTerminated);
  for (auto& q : queued) CHECK(q.ready());  // each either ran or was terminated
  for (pid_t pid : pids) CHECK_FALSE(test_support::alive(pid));
  pool.join();
}

TEST_CASE("lifecycle - terminate after close stops a pool stuck behind a hung task" * doctest::timeout(30)) {
  procpool::Pool pool(1);
  const auto pids = pool.worker_pids();
  auto hung = pool.apply_async(sleep_ms, 3600 * 1000);
  auto queued = pool.apply_async(identity, 1);
  pool.close();
  CHECK_FALSE(hung.wait(100ms));
  // join() would wait for the hung task forever; terminate() from another thread ends both.
  std::thread joiner([&] { pool.join(); });
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  pool.terminate();
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  joiner.join();
  CHECK_THROWS_WITH_AS(hung.get(), doctest::Contains("procpool::Pool::terminate"), procpool::PoolTerminated);
  CHECK_THROWS_AS(queued.get(), procpool::PoolTerminated);
  for (pid_t pid : pids) CHECK_FALSE(test_support::alive(pid));
  const auto again = std::chrono::steady_clock::now();
  pool.terminate();  // a second terminate() does nothing
  CHECK(std::chrono::steady_clock::now() - again < 1s);
  CHECK_THROWS_AS((void)pool.apply_async(identity, 2), procpool::ValueError);
  pool.join();
}

TEST_CASE("lifecycle - a pool leaves no process, fd or /dev/shm entry behind" * doctest::timeout(60)) {
  const auto fds = test_support::open_fd_count();
  const auto shm = test_support::dev_shm();
  const auto children = test_support::children_of(::getpid());
  for (int round = 0; round < 3; ++round) {
    procpool::Pool pool(2);
    std::vector<procpool::AsyncResult<std::string>> big;
    // Large payloads travel through memfds: they must be closed too.
    for (int i = 0; i < 4; ++i) big.push_back(pool.apply_async([](std::string s) { return s; }, std::string(1 << 20, 'z')));
    for (auto& b : big) CHECK(b.get().size() == (1u << 20));
    if (round == 1) {
      pool.terminate();
    } else {
      pool.close();
    }
    pool.join();
  }
  CHECK(test_support::open_fd_count() == fds);
  CHECK(test_support::dev_shm() == shm);
  CHECK(test_support::children_of(::getpid()) == children);
}

TEST_CASE("lifecycle - the initializer runs in every worker before its tasks" * doctest::timeout(30)) {
  procpool::PoolOptions options;
  options.processes = 2;
  options.initializer = set_initialized;
  procpool::Pool pool(options);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(read_initialized));
  for (auto& r : results) CHECK(r.get() == 1234);
  CHECK(initialized == 0);  // the parent's copy is its own
}

TEST_CASE("lifecycle - workers are PoolWorker-N, daemonic, with the main process as parent" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  const auto me = pool.apply([] { return procpool::current_process().name; });
  CHECK((me == "PoolWorker-1" || me == "PoolWorker-2"));
  CHECK(pool.apply([] { return procpool::current_process().daemon; }));
  CHECK(pool.apply([] { return procpool::current_process().pid == ::getpid(); }));
  CHECK(pool.apply([] { return procpool::parent_process().value().name; }) == "MainProcess");
  CHECK(procpool::current_process().name == "MainProcess");
}
