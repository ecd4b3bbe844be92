// WorkerLost says how the worker died: its pid, the signal or exit status,
// and for a crash the stack of the thread that crashed.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <procpool/procpool.hpp>
#include <string>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

// Not static, and never inlined: the names the backtraces must show, even
// in a release build (from the executable's symbol table).
[[gnu::noinline]] int worker_lost_null_deref(int offset) {
  volatile int* p = nullptr;
  return p[offset];
}
[[gnu::noinline]] int worker_lost_abort(int) { std::abort(); }
// The volatile read after the call keeps each frame (no loop in its place).
[[gnu::noinline]] int worker_lost_recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  const int below = depth < (1 << 30) ? worker_lost_recurse(depth + 1) : 0;
  return below + frame[0];
}

namespace {

int worker_pid(int) { return static_cast<int>(::getpid()); }
int exit_with(int code) { ::_exit(code); }
int identity(int x) { return x; }
// Says it runs (started[0] = its pid), then waits to be killed.
int wait_to_be_killed(procpool::SharedArray<int> started) {
  started[0] = static_cast<int>(::getpid());
  std::this_thread::sleep_for(60s);
  return 0;
}

// The WorkerLost `r` fails with.
template <class R>
procpool::WorkerLost lost_by(R& r) {
  try {
    r.get();
  } catch (const procpool::WorkerLost& e) {
    return e;
  }
  FAIL("expected WorkerLost");
  return procpool::WorkerLost("none");
}

void check_pool_works(procpool::Pool& pool) {
  CHECK(pool.apply(identity, 7) == 7);
  CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 1; }));
}

}  // namespace

TEST_CASE("worker lost - a null pointer dereference: SIGSEGV, the worker's pid, the task in the backtrace" *
          doctest::timeout(60)) {
  procpool::Pool pool(1);
  const int pid = pool.apply(worker_pid, 0);
  auto r = pool.apply_async(worker_lost_null_deref, 0);
  const procpool::WorkerLost e = lost_by(r);
  const std::string report = std::string(e.what()) + "\n" + e.backtrace();
  INFO(report);
  CHECK(e.signal() == SIGSEGV);
  CHECK(e.pid() == pid);
  CHECK(e.exit_status() == -1);
  CHECK(std::string(e.what()).find("pid " + std::to_string(pid)) != std::string::npos);
  CHECK(std::string(e.what()).find("SIGSEGV") != std::string::npos);
  // The crashing frame comes first.
  CHECK(e.backtrace().rfind("#0 ", 0) == 0);
  CHECK(e.backtrace().find("worker_lost_null_deref(int)") != std::string::npos);
  CHECK(e.backtrace().find("worker_lost_null_deref(int)") < e.backtrace().find("#1 "));
  // Copies share it.
  const procpool::WorkerLost copy = e;
  CHECK(copy.backtrace() == e.backtrace());
  check_pool_works(pool);
}

TEST_CASE("worker lost - abort(): SIGABRT and the task in the backtrace" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const int pid = pool.apply(worker_pid, 0);
  auto r = pool.apply_async(worker_lost_abort, 0);
  const procpool::WorkerLost e = lost_by(r);
  CHECK(e.signal() == SIGABRT);
  CHECK(e.pid() == pid);
  CHECK(e.backtrace().find("worker_lost_abort(int)") != std::string::npos);
  check_pool_works(pool);
}

TEST_CASE("worker lost - a stack overflow is caught on the alternate stack" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  auto r = pool.apply_async(worker_lost_recurse, 0);
  const procpool::WorkerLost e = lost_by(r);
  CHECK(e.signal() == SIGSEGV);
  CHECK(e.backtrace().find("worker_lost_recurse(int)") != std::string::npos);
  check_pool_works(pool);
}

TEST_CASE("worker lost - a worker SIGKILLed from outside: SIGKILL, no backtrace" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  procpool::SharedArray<int> started(1);
  auto r = pool.apply_async(wait_to_be_killed, started);
  REQUIRE(test_support::eventually([&] { return started[0] != 0; }, 20s));
  const pid_t pid = started[0];
  REQUIRE(::kill(pid, SIGKILL) == 0);
  const procpool::WorkerLost e = lost_by(r);
  CHECK(e.signal() == SIGKILL);
  CHECK(e.pid() == pid);
  CHECK(e.exit_status() == -1);
  CHECK(e.backtrace().empty());
  check_pool_works(pool);
}

TEST_CASE("worker lost - a task calling _exit(3): signal 0, exit status 3, no backtrace" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const int pid = pool.apply(worker_pid, 0);
  auto r = pool.apply_async(exit_with, 3);
  const procpool::WorkerLost e = lost_by(r);
  CHECK(e.signal() == 0);
  CHECK(e.exit_status() == 3);
  CHECK(e.pid() == pid);
  CHECK(e.backtrace().empty());
  check_pool_works(pool);
}

TEST_CASE("worker lost - the last attempt of a retried task carries its death" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  procpool::TaskOptions options;
  options.retries = 1;
  auto r = pool.apply_async(options, worker_lost_null_deref, 0);
  const procpool::WorkerLost e = lost_by(r);
  CHECK(std::string(e.what()).find("(attempt 2 of 2)") != std::string::npos);
  CHECK(e.signal() == SIGSEGV);
  CHECK(e.pid() != 0);
  CHECK(e.backtrace().find("worker_lost_null_deref(int)") != std::string::npos);
  check_pool_works(pool);
}

TEST_CASE("worker lost - built from a message alone, it knows nothing more") {
  const procpool::WorkerLost e("gone");
  CHECK(std::string(e.what()) == "gone");
  CHECK(e.pid() == 0);
  CHECK(e.signal() == 0);
  CHECK(e.exit_status() == -1);
  CHECK(e.backtrace().empty());
}
