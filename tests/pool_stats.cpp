// Pool::stats() and PoolOptions::trace_path: the counters after a known mix
// of outcomes, the workers, the percentiles, and the trace file's frame.
// (tests/examples/trace_test.py checks the trace's JSON event by event.)
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <procpool/procpool.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using test_support::eventually;

namespace {

// Shared with the workers (mapped before a pool forks them).
struct Board {
  std::atomic<int> gate{0};     // blocked tasks wait for it to open
  std::atomic<int> started{0};  // blocked tasks that reached their body
};
Board* board = nullptr;

int blocker(int x) {
  board->started.fetch_add(1);
  while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
  return x;
}
int twice(int x) { return 2 * x; }
int thrower(int x) { throw std::runtime_error("no " + std::to_string(x)); }
int die(int) {
  std::raise(SIGKILL);
  return 0;
}
pid_t my_pid(int) { return ::getpid(); }
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
// Spins until this process has used `ms` more of CPU time (not wall time: on
// a loaded machine a worker may get a fraction of a core).
double spin_cpu(int ms) {
  const auto cpu_ns = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  const std::int64_t end = cpu_ns() + std::int64_t{ms} * 1'000'000;
  volatile double x = 1;
  while (cpu_ns() < end) x = x * 1.0000001 + 1e-9;
  return x;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("pool stats - a new pool has counted nothing and lists its workers" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  const procpool::PoolStats s = pool.stats();
  CHECK(s.submitted == 0);
  CHECK(s.completed == 0);
  CHECK(s.failed == 0);
  CHECK(s.cancelled == 0);
  CHECK(s.queued == 0);
  CHECK(s.running == 0);
  CHECK(s.workers_replaced == 0);
  CHECK(s.queue_wait.samples == 0);
  CHECK(s.queue_wait.p50.count() == 0);
  CHECK(s.run_time.p99.count() == 0);
  REQUIRE(s.workers.size() == 2);
  std::set<pid_t> pids;
  for (const auto& w : s.workers) {
    pids.insert(w.pid);
    CHECK(w.tasks_done == 0);
    CHECK(w.rss_bytes > 0);
  }
  const auto expected = pool.worker_pids();
  CHECK(pids == std::set<pid_t>(expected.begin(), expected.end()));
}

TEST_CASE("pool stats - a known mix: values, errors, a cancel, a killed worker" * doctest::timeout(120)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  // Both workers blocked, so the next task waits and can be cancelled before it starts.
  auto b1 = pool.apply_async(blocker, 1);
  auto b2 = pool.apply_async(blocker, 2);
  REQUIRE(eventually([] { return board->started.load() == 2; }));
  auto doomed = pool.apply_async(twice, 99);
  CHECK(doomed.cancel());
  board->gate.store(1);
  CHECK(b1.get() == 1);
  CHECK(b2.get() == 2);

  std::vector<procpool::AsyncResult<int>> values;
  for (int i = 0; i < 20; ++i) values.push_back(pool.apply_async(twice, i));
  std::vector<procpool::AsyncResult<int>> errors;
  for (int i = 0; i < 5; ++i) errors.push_back(pool.apply_async(thrower, i));
  for (int i = 0; i < 20; ++i) CHECK(values[static_cast<std::size_t>(i)].get() == 2 * i);
  for (auto& e : errors) CHECK_THROWS_AS(e.get(), std::runtime_error);
  CHECK_THROWS_AS(pool.apply(die, 0), procpool::WorkerLost);

  // 2 blockers + 1 cancelled + 20 values + 5 errors + 1 lost. An outcome is
  // counted just after its result is ready: wait for the last one.
  procpool::PoolStats s;
  REQUIRE(eventually([&] {
    s = pool.stats();
    return s.workers.size() == 2 && s.failed == 6;
  }));
  CHECK(s.submitted == 29);
  CHECK(s.completed == 22);
  CHECK(s.failed == 6);
  CHECK(s.cancelled == 1);
  CHECK(s.submitted == s.completed + s.failed + s.cancelled);
  CHECK(s.queued == 0);
  CHECK(s.running == 0);
  CHECK(s.workers_replaced >= 1);
  pool.close();
  pool.join();
  // Still there after join(), without workers.
  const procpool::PoolStats after = pool.stats();
  CHECK(after.submitted == 29);
  CHECK(after.workers.empty());
}

TEST_CASE("pool stats - queued and running while tasks block" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 5; ++i) results.push_back(pool.apply_async(blocker, i));
  CHECK(eventually([&] {
    const auto s = pool.stats();
    return s.running == 2 && s.queued == 3;
  }));
  board->gate.store(1);
  for (auto& r : results) r.get();
  CHECK(eventually([&] {
    const auto s = pool.stats();
    return s.running == 0 && s.queued == 0 && s.completed == 5;
  }));
}

TEST_CASE("pool stats - each worker's pid and tasks done match the tasks' getpid()" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<pid_t>> results;
  for (int i = 0; i < 200; ++i) results.push_back(pool.apply_async(my_pid, i));
  std::map<pid_t, std::uint64_t> by_pid;
  for (auto& r : results) ++by_pid[r.get()];
  procpool::PoolStats s;
  REQUIRE(eventually([&] {
    s = pool.stats();
    return s.completed == 200;
  }));
  std::uint64_t total = 0;
  for (const auto& w : s.workers) {
    total += w.tasks_done;
    CHECK(w.tasks_done == by_pid[w.pid]);  // 0 for a worker that ran none
    CHECK(w.rss_bytes > 0);
  }
  CHECK(total == 200);
  for (const auto& [pid, count] : by_pid) {
    CHECK(std::any_of(s.workers.begin(), s.workers.end(), [&](const procpool::WorkerStats& w) { return w.pid == pid; }));
  }
}

TEST_CASE("pool stats - cpu_seconds grows with a CPU-bound task" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const procpool::PoolStats before = pool.stats();
  REQUIRE(before.workers.size() == 1);
  pool.apply(spin_cpu, 300);
  CHECK(eventually([&] {
    const procpool::PoolStats after = pool.stats();
    return after.workers.size() == 1 && after.workers[0].cpu_seconds >= before.workers[0].cpu_seconds + 0.2;
  }));
}

TEST_CASE("pool stats - percentiles of queue wait and run time" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  // One worker, six 50 ms tasks at once: the k-th waits about k * 50 ms.
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 6; ++i) results.push_back(pool.apply_async(sleep_ms, 50));
  for (auto& r : results) r.get();
  procpool::PoolStats s;
  REQUIRE(eventually([&] {
    s = pool.stats();
    return s.run_time.samples == 6;
  }));
  CHECK(s.queue_wait.samples == 6);
  CHECK(s.run_time.p50 >= 50ms);
  CHECK(s.run_time.p50 <= s.run_time.p99);
  CHECK(s.run_time.p99 < 10s);
  CHECK(s.queue_wait.p50 >= 90ms);  // the third: about 100 ms
  CHECK(s.queue_wait.p50 <= s.queue_wait.p99);
  CHECK(s.queue_wait.p99 >= 200ms);  // the last: about 250 ms
  CHECK(s.queue_wait.p99 < 10s);
}

TEST_CASE("pool stats - a busy pool times a sample of its tasks, a traced one every task" * doctest::timeout(120)) {
  constexpr int tasks = 3000;
  const std::string path = "/tmp/procpool_stats_test_" + std::to_string(::getpid()) + ".json";
  for (const bool traced : {false, true}) {
    procpool::PoolOptions options;
    options.processes = 2;
    if (traced) options.trace_path = path;
    procpool::Pool pool(options);
    std::vector<int> items(tasks);
    // chunksize 1: every item is a task; all submitted at once.
    const auto out = pool.map(twice, items, 1);
    CHECK(out.size() == items.size());
    procpool::PoolStats s;
    CHECK(eventually([&] {
      s = pool.stats();
      return s.completed == tasks;
    }));
    if (traced) {
      CHECK(s.run_time.samples == procpool::PoolStats::timing_window);
    } else {
      CHECK(s.run_time.samples >= tasks / 64);
      CHECK(s.run_time.samples < tasks);
    }
  }
  std::remove(path.c_str());
}

TEST_CASE("pool trace - a file it cannot open fails the constructor with Error" * doctest::timeout(30)) {
  procpool::PoolOptions options;
  options.processes = 1;
  options.trace_path = "/nonexistent-procpool-dir/trace.json";
  try {
    procpool::Pool pool(options);
    FAIL("the pool was built");
  } catch (const procpool::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("/nonexistent-procpool-dir/trace.json") != std::string::npos);
    CHECK(what.find("No such file or directory") != std::string::npos);
  }
}

TEST_CASE("pool trace - after join the file is complete: one run per task, worker starts and a death" *
          doctest::timeout(120)) {
  const std::string path = "/tmp/procpool_trace_test_" + std::to_string(::getpid()) + ".json";
  {
    procpool::PoolOptions options;
    options.processes = 2;
    options.trace_path = path;
    procpool::Pool pool(options);
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 100; ++i) results.push_back(pool.apply_async(twice, i));
    for (auto& r : results) r.get();
    CHECK_THROWS_AS(pool.apply(die, 0), procpool::WorkerLost);
    pool.apply(twice, 1);
    pool.close();
    pool.join();
    const std::string trace = read_file(path);
    CHECK(trace.rfind("{\"traceEvents\":[\n", 0) == 0);
    CHECK(trace.size() > 4);
    CHECK(trace.substr(trace.size() - 4) == "\n]}\n");
    CHECK(count_of(trace, "\"ph\":\"X\"") == 102);
    CHECK(count_of(trace, "\"ph\":\"b\"") == 102);
    CHECK(count_of(trace, "\"ph\":\"e\"") == 102);
    CHECK(count_of(trace, "\"lost\":true") == 1);
    CHECK(count_of(trace, "\"name\":\"worker started\"") == 3);
    CHECK(count_of(trace, "killed by signal 9 (SIGKILL)") == 1);
    CHECK(count_of(trace, "\"name\":\"worker ended\"") == 3);  // the killed one, then both at close
  }
  std::remove(path.c_str());
}
