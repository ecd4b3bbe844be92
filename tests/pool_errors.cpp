// The error model: what get() throws for each way a task can fail.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <csignal>
#include <procpool/procpool.hpp>
#include <set>
#include <stdexcept>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class E>
int throw_standard(std::string message) {
  throw E(message);
}
int throw_bad_alloc() { throw std::bad_alloc(); }
int throw_user_type() { throw ParseError("line 3: unexpected token"); }
int throw_int() { throw 42; }
int throw_c_string() { throw "plain C string"; }
int exit_with(int code) { ::_exit(code); }
int kill_self(int sig) {
  ::raise(sig);
  std::this_thread::sleep_for(10s);
  return 0;
}
int crash() {
  volatile int* p = nullptr;
  return *p;
}
int call_abort() { std::abort(); }
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int identity(int x) { return x; }

// Serializes fine in the parent unless told to fail; its load always fails.
struct Fragile {
  bool fail_save = false;
  template <class Archive>
  void save(Archive& ar) const {
    if (fail_save) throw std::runtime_error("Fragile refuses to be saved");
    ar(fail_save);
  }
  template <class Archive>
  void load(Archive&) {
    throw std::runtime_error("Fragile refuses to be loaded");
  }
};
int take_fragile(Fragile) { return 1; }
Fragile make_fragile(bool fail_save) { return Fragile{fail_save}; }

template <class E>
void check_standard(procpool::Pool& pool, const char* name) {
  INFO(name);
  auto result = pool.apply_async(throw_standard<E>, std::string("message of ") + name);
  CHECK_THROWS_WITH_AS(result.get(), (std::string("message of ") + name).c_str(), E);
  // Exactly that type: a handler for it catches, and it is no RemoteError.
  try {
    result.get();
  } catch (const procpool::Error&) {
    FAIL("a standard exception came back as a procpool error");
  } catch (const E&) {
  }
}

}  // namespace

TEST_CASE("errors - standard exceptions come back as their own type and message" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  check_standard<std::logic_error>(pool, "logic_error");
  check_standard<std::invalid_argument>(pool, "invalid_argument");
  check_standard<std::domain_error>(pool, "domain_error");
  check_standard<std::length_error>(pool, "length_error");
  check_standard<std::out_of_range>(pool, "out_of_range");
  check_standard<std::runtime_error>(pool, "runtime_error");
  check_standard<std::range_error>(pool, "range_error");
  check_standard<std::overflow_error>(pool, "overflow_error");
  check_standard<std::underflow_error>(pool, "underflow_error");
  CHECK_THROWS_AS(pool.apply(throw_bad_alloc), std::bad_alloc);
}

TEST_CASE("errors - any other throw is a RemoteError naming the type and the worker" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  const auto pids = pool.worker_pids();
  try {
    pool.apply(throw_user_type);
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "(anonymous namespace)::ParseError");
    CHECK(std::string(e.what()) == "line 3: unexpected token");
    CHECK(std::find(pids.begin(), pids.end(), e.worker_pid()) != pids.end());
  }
  try {
    pool.apply(throw_int);
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "int");
  }
  try {
    pool.apply(throw_c_string);
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(std::string(e.what()) == "plain C string");
  }
  CHECK(pool.worker_pids() == pids);  // throwing tasks cost no worker
}

TEST_CASE("errors - serialization failures are SerializationError and every worker stays" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  const auto pids = pool.worker_pids();
  // An argument that cannot be saved in the parent.
  auto unsaved = pool.apply_async(take_fragile, Fragile{true});
  CHECK_THROWS_AS(unsaved.get(), procpool::SerializationError);
  CHECK_THROWS_WITH(unsaved.get(), doctest::Contains("Fragile refuses to be saved"));
  // An argument that cannot be loaded in the worker.
  auto unloaded = pool.apply_async(take_fragile, Fragile{false});
  CHECK_THROWS_WITH_AS(unloaded.get(), doctest::Contains("Fragile refuses to be loaded"), procpool::SerializationError);
  // A result that cannot be saved in the worker.
  CHECK_THROWS_WITH_AS(pool.apply(make_fragile, true), doctest::Contains("Fragile refuses to be saved"),
                       procpool::SerializationError);
  // A result that cannot be loaded in the parent.
  CHECK_THROWS_WITH_AS(pool.apply(make_fragile, false), doctest::Contains("Fragile refuses to be loaded"),
                       procpool::SerializationError);
  CHECK(pool.worker_pids() == pids);
  CHECK(pool.apply(identity, 5) == 5);
}

TEST_CASE("errors - a worker that dies fails only its task with WorkerLost and is replaced" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  struct Case {
    const char* what;
    std::function<procpool::AsyncResult<int>()> submit;
    const char* message;
  };
  const std::vector<Case> cases{
      {"_exit(3)", [&] { return pool.apply_async(exit_with, 3); }, "exited with status 3"},
      {"SIGKILL", [&] { return pool.apply_async(kill_self, SIGKILL); }, "killed by signal 9 (SIGKILL)"},
      {"SIGSEGV", [&] { return pool.apply_async(crash); }, "(SIGSEGV)"},
      {"abort()", [&] { return pool.apply_async(call_abort); }, "(SIGABRT)"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const auto before = pool.worker_pids();
    auto lost = c.submit();
    std::vector<procpool::AsyncResult<int>> others;
    for (int i = 0; i < 50; ++i) others.push_back(pool.apply_async(identity, i));
    CHECK_THROWS_WITH_AS(lost.get(), doctest::Contains(c.message), procpool::WorkerLost);
    CHECK_THROWS_WITH(lost.get(), doctest::Contains("while running the task"));
    for (int i = 0; i < 50; ++i) CHECK(others[static_cast<std::size_t>(i)].get() == i);
    CHECK(pool.size() == 2);
    CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2 && pool.worker_pids() != before; }));
  }
}

TEST_CASE("errors - a task past task_timeout fails with TaskTimeout and its worker is replaced" *
          doctest::timeout(60)) {
  procpool::PoolOptions options;
  options.processes = 1;
  options.task_timeout = 200ms;
  procpool::Pool pool(options);
  const auto before = pool.worker_pids();
  auto runaway = pool.apply_async(sleep_ms, 30000);
  auto queued = pool.apply_async(identity, 8);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(runaway.get(), doctest::Contains("timeout of 200 ms"), procpool::TaskTimeout);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(queued.get() == 8);  // queued behind it, not started: run by the replacement
  CHECK(pool.worker_pids() != before);
  CHECK(pool.apply(sleep_ms, 10) == 10);  // short tasks are left alone
}

TEST_CASE("errors - misuse is ValueError" * doctest::timeout(30)) {
  CHECK_THROWS_AS(procpool::Pool{0}, procpool::ValueError);
  CHECK_THROWS_AS(procpool::Pool{-3}, procpool::ValueError);
  procpool::PoolOptions negative;
  negative.processes = -1;
  CHECK_THROWS_AS(procpool::Pool{negative}, procpool::ValueError);

  procpool::Pool pool(1);
  CHECK_THROWS_WITH_AS(pool.join(), doctest::Contains("procpool::Pool::join"), procpool::ValueError);
  pool.close();
  CHECK_THROWS_WITH_AS((void)pool.apply_async(identity, 1), "procpool::Pool::apply_async: pool is closed",
                       procpool::ValueError);
  CHECK_THROWS_AS(pool.apply(identity, 1), procpool::ValueError);
  CHECK_THROWS_AS(pool.close(), procpool::ValueError);
  CHECK_THROWS_AS(pool.size(), procpool::ValueError);
  CHECK_THROWS_AS((void)pool.imap(identity, std::vector<int>{1}, 0), procpool::ValueError);
  pool.terminate();  // still valid after close(), as in Python
  pool.terminate();  // and a second one does nothing
  CHECK_THROWS_WITH_AS(pool.close(), "procpool::Pool::close: pool is terminated", procpool::ValueError);
  pool.join();
  pool.join();  // join and terminate are the calls that stay valid
}

namespace {

// The lowest fd number free in `pid`: with RLIMIT_NOFILE at it, its next socketpair() fails.
int lowest_free_fd(pid_t pid) {
  std::set<int> open;
  for (const auto& name : test_support::list_dir("/proc/" + std::to_string(pid) + "/fd")) open.insert(std::stoi(name));
  int fd = 0;
  while (open.count(fd) != 0) ++fd;
  return fd;
}

}  // namespace

TEST_CASE("pool - a worker the zygote fails to fork is retried; the pool waits, then recovers" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const pid_t worker = pool.worker_pids().at(0);
  pid_t zygote = 0;
  REQUIRE_FALSE(test_support::proc_state(worker, &zygote).empty());
  REQUIRE(zygote != ::getpid());
  rlimit saved{};
  REQUIRE(::prlimit(zygote, RLIMIT_NOFILE, nullptr, &saved) == 0);
  const rlimit low{static_cast<rlim_t>(lowest_free_fd(zygote)), saved.rlim_max};
  REQUIRE(::prlimit(zygote, RLIMIT_NOFILE, &low, nullptr) == 0);
  ::kill(worker, SIGKILL);
  // The zygote reaps the worker, then cannot fork its replacement (no fd for its socket).
  REQUIRE(test_support::eventually([&] { return pool.worker_pids().empty(); }));
  auto pending = pool.apply_async(identity, 42);
  CHECK_FALSE(pending.wait(300ms));  // it waits for a worker: not failed, and the pool still runs
  CHECK(pool.size() == 1);
  REQUIRE(::prlimit(zygote, RLIMIT_NOFILE, &saved, nullptr) == 0);
  CHECK(pending.get(5s) == 42);
  CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 1; }));
  CHECK(pool.apply(identity, 7) == 7);
}
