// A pool whose workers cannot start is broken (BrokenPool): its initializer
// keeps throwing, or no worker can be forked for a while. What its results,
// its later calls and its end then do; and what does not break it.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <csignal>
#include <grp.h>
#include <poll.h>
#include <procpool/procpool.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

#if defined(__SANITIZE_THREAD__)
// Two tests build a pool in a child forked from this (multi-threaded) program.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
#endif

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

int identity(int x) { return x; }

// Initializer runs, all workers together: mapped before the pools fork them.
std::atomic<int>* starts = nullptr;

void map_starts() {
  if (starts != nullptr) return;
  void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(shared != MAP_FAILED);
  starts = new (shared) std::atomic<int>(0);
}

void slow_failing_initializer() {
  starts->fetch_add(1);
  // Slow enough that a task submitted right after the constructor is queued before the pool breaks.
  std::this_thread::sleep_for(200ms);
  throw std::runtime_error("cannot reach the database");
}

void every_third_start_fails() {
  if (starts->fetch_add(1) % 3 == 2) throw std::runtime_error("flaky start");
}

template <class F>
Clock::duration time_of(F f) {
  const auto start = Clock::now();
  f();
  return Clock::now() - start;
}

}  // namespace

TEST_CASE("broken - an initializer that keeps throwing breaks the pool; results and calls say why" *
          doctest::timeout(120)) {
  map_starts();
  starts->store(0);
  const auto children = test_support::children_of(::getpid());
  procpool::PoolOptions options;
  options.processes = 2;
  options.initializer = slow_failing_initializer;
  procpool::Pool pool(options);
  auto queued = pool.apply_async(identity, 1);
  auto mapped = pool.map_async(identity, std::vector<int>{1, 2, 3});
  CHECK_THROWS_WITH_AS(queued.get(60s), doctest::Contains("cannot reach the database"), procpool::BrokenPool);
  CHECK_THROWS_WITH_AS(queued.get(), doctest::Contains("procpool::Pool: pool is broken"), procpool::BrokenPool);
  CHECK_THROWS_AS(mapped.get(10s), procpool::BrokenPool);
  // It gave up after 3 failures per worker in a row (a worker still in its initializer then is killed).
  const int tried = starts->load();
  CHECK(tried >= 6);
  CHECK(tried <= 8);
  // A fork the zygote was already asked for when the pool broke may still
  // run its initializer (at most one per slot; seen under load); after
  // that, no worker starts again.
  std::this_thread::sleep_for(500ms);
  const int settled = starts->load();
  CHECK(settled <= tried + 2);
  std::this_thread::sleep_for(500ms);
  CHECK(starts->load() == settled);  // and starts no more workers

  CHECK_THROWS_WITH_AS((void)pool.apply_async(identity, 2),
                       doctest::Contains("procpool::Pool::apply_async: pool is broken"), procpool::BrokenPool);
  CHECK_THROWS_WITH_AS((void)pool.apply_async(identity, 2), doctest::Contains("cannot reach the database"),
                       procpool::BrokenPool);
  CHECK_THROWS_AS(pool.apply(identity, 3), procpool::BrokenPool);
  CHECK_THROWS_AS(pool.map(identity, std::vector<int>{1}), procpool::BrokenPool);
  CHECK_THROWS_AS((void)pool.imap(identity, std::vector<int>{1}), procpool::BrokenPool);
  CHECK_THROWS_AS((void)pool.share(std::string("data")), procpool::BrokenPool);
  CHECK_THROWS_AS(pool.size(), procpool::BrokenPool);
  CHECK_THROWS_AS(pool.worker_pids(), procpool::BrokenPool);
  // close(), join() and terminate() return, and leave no process behind.
  CHECK(time_of([&] {
          pool.close();
          pool.close();
          pool.join();
          pool.terminate();
          pool.join();
        }) < 10s);
  CHECK(test_support::children_of(::getpid()) == children);
}

TEST_CASE("broken - a broken pool's destructor and terminate() return promptly" * doctest::timeout(120)) {
  map_starts();
  const auto children = test_support::children_of(::getpid());
  procpool::PoolOptions options;
  options.processes = 3;
  options.initializer = [] { throw 42; };  // not a std::exception
  std::vector<procpool::AsyncResult<int>> results;
  CHECK(time_of([&] {
          procpool::Pool pool(options);
          try {
            for (int i = 0; i < 100; ++i) results.push_back(pool.apply_async(identity, i));
          } catch (const procpool::BrokenPool&) {  // broken already
          }
          REQUIRE_FALSE(results.empty());
          CHECK_THROWS_WITH_AS(results.front().get(60s), doctest::Contains("a non-standard exception"),
                               procpool::BrokenPool);
        }) < 60s);
  for (auto& r : results) CHECK_THROWS_AS(r.get(), procpool::BrokenPool);
  CHECK(test_support::children_of(::getpid()) == children);

  procpool::Pool pool(options);
  CHECK(test_support::eventually([&] {
    try {
      (void)pool.size();
      return false;
    } catch (const procpool::BrokenPool&) {
      return true;
    }
  }, 60s));
  CHECK(time_of([&] { pool.terminate(); }) < 10s);
}

TEST_CASE("broken - a long initializer message is cut to its first 255 bytes" * doctest::timeout(120)) {
  procpool::PoolOptions options;
  options.processes = 1;
  options.initializer = [] { throw std::runtime_error(std::string(300, 'm') + " tail"); };
  procpool::Pool pool(options);
  std::string what;
  try {
    pool.apply(identity, 1);
  } catch (const procpool::BrokenPool& e) {
    what = e.what();
  }
  CHECK(what.find(std::string(255, 'm')) != std::string::npos);
  CHECK(what.find(std::string(256, 'm')) == std::string::npos);
  CHECK(what.find("tail") == std::string::npos);
}

TEST_CASE("broken - an initializer that fails now and then does not break the pool" * doctest::timeout(120)) {
  map_starts();
  starts->store(0);
  procpool::PoolOptions options;
  options.processes = 2;
  options.maxtasksperchild = 1;  // a new worker, so a new start, per task
  options.initializer = every_third_start_fails;
  procpool::Pool pool(options);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(identity, i));
  for (int i = 0; i < 40; ++i) CHECK(results[static_cast<std::size_t>(i)].get(60s) == i);
  CHECK(starts->load() >= 59);  // 40 good starts, and a failed one after every two
  CHECK(pool.size() == 2);
}

TEST_CASE("broken - a pool that can fork no worker for 5 s is broken, saying why" * doctest::timeout(120)) {
  procpool::Pool pool(1);
  const pid_t worker = pool.worker_pids().at(0);
  pid_t zygote = 0;
  REQUIRE_FALSE(test_support::proc_state(worker, &zygote).empty());
  // The zygote has no fd left for a worker's socket: its forks fail with EMFILE.
  std::set<int> open;
  for (const auto& name : test_support::list_dir("/proc/" + std::to_string(zygote) + "/fd")) {
    open.insert(std::stoi(name));
  }
  int lowest_free = 0;
  while (open.count(lowest_free) != 0) ++lowest_free;
  rlimit saved{};
  REQUIRE(::prlimit(zygote, RLIMIT_NOFILE, nullptr, &saved) == 0);
  const rlimit low{static_cast<rlim_t>(lowest_free), saved.rlim_max};
  REQUIRE(::prlimit(zygote, RLIMIT_NOFILE, &low, nullptr) == 0);
  ::kill(worker, SIGKILL);
  REQUIRE(test_support::eventually([&] { return pool.worker_pids().empty(); }));
  auto pending = pool.apply_async(identity, 42);
  CHECK_FALSE(pending.wait(1s));  // it waits for a worker first
  CHECK_THROWS_WITH_AS(pending.get(60s), doctest::Contains("Too many open files"), procpool::BrokenPool);
  CHECK_THROWS_WITH_AS((void)pool.apply_async(identity, 1), doctest::Contains("no worker could be started"),
                       procpool::BrokenPool);
  CHECK(time_of([&] {
          pool.close();
          pool.join();
        }) < 10s);
}

namespace {

// Runs `body` in a forked child under a fresh unprivileged uid (RLIMIT_NPROC
// binds only such a user); returns what it reported ("ok" if all went well).
template <class Body>
std::string as_unprivileged_child(Body body) {
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const uid_t uid = 40000 + static_cast<uid_t>(::getpid() % 20000);
  std::fflush(nullptr);  // or the child would print our buffered output again
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(out[0]);
    std::string report;
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) {
      report = "cannot change uid";
    } else {
      try {
        report = body();
      } catch (const std::exception& e) {
        report = std::string("threw: ") + e.what();
      }
    }
    [[maybe_unused]] const auto n = ::write(out[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(out[1]);
  std::string report;
  char buffer[1024];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) report.append(buffer, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return report;
}

// Lets this process's (fresh) uid have one more task than it has now (its
// threads): room for the zygote, none for a worker. False if refused.
bool limit_tasks_to_one_more() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NPROC, &limit) != 0) return false;
  limit.rlim_cur = static_cast<rlim_t>(test_support::list_dir("/proc/self/task").size()) + 1;
  return ::setrlimit(RLIMIT_NPROC, &limit) == 0;
}

}  // namespace

TEST_CASE("broken - the constructor retries a fork that fails, then throws BrokenPool" * doctest::timeout(120)) {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to run a child under a fresh uid");
    return;
  }
  // Room for the zygote, none for a worker.
  const std::string report = as_unprivileged_child([]() -> std::string {
    if (!limit_tasks_to_one_more()) return "setrlimit failed";
    const auto start = Clock::now();
    try {
      procpool::Pool pool(2);
      return "the pool was built";
    } catch (const procpool::BrokenPool& e) {
      if (Clock::now() - start < 4s) return "gave up too soon";
      if (!test_support::children_of(::getpid()).empty()) return "a child was left";
      return std::string("ok: ") + e.what();
    }
  });
  INFO(report);
  CHECK(report.rfind("ok: ", 0) == 0);
  CHECK(report.find("Resource temporarily unavailable") != std::string::npos);
  CHECK(report.find("procpool::Pool") != std::string::npos);
}

TEST_CASE("broken - the constructor waits out a fork failure that passes" * doctest::timeout(120)) {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to run a child under a fresh uid");
    return;
  }
  const std::string report = as_unprivileged_child([]() -> std::string {
    // A thread that lifts the limit for us and the zygote after a while.
    std::atomic<bool> lifted{false};
    std::thread lifter([&] {
      std::this_thread::sleep_for(700ms);
      rlimit high{};
      ::getrlimit(RLIMIT_NPROC, &high);
      high.rlim_cur = high.rlim_max;
      for (pid_t zygote : test_support::children_of(::getpid())) ::prlimit(zygote, RLIMIT_NPROC, &high, nullptr);
      ::setrlimit(RLIMIT_NPROC, &high);
      lifted = true;
    });
    if (!limit_tasks_to_one_more()) {
      lifter.join();
      return "setrlimit failed";
    }
    std::string result;
    try {
      procpool::Pool pool(2);
      // One may still wait for its retry (from the watch, once the constructor has one worker).
      const auto both = [&] { return pool.worker_pids().size() == 2; };
      if (!lifted) result = "built before the limit was lifted";
      else if (pool.apply(identity, 9) != 9) result = "wrong result";
      else if (!test_support::eventually(both, 20s)) result = "workers missing";
      else result = "ok";
    } catch (const std::exception& e) {
      result = std::string("threw: ") + e.what();
    }
    lifter.join();
    return result;
  });
  CHECK(report == "ok");
}
