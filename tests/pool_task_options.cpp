// TaskOptions on the local pool: timeout, soft_timeout, retries, priority.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <procpool/procpool.hpp>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// Shared with the workers (mapped before a pool forks them).
struct Board {
  std::atomic<int> gate{0};       // blocked tasks wait for it to open
  std::atomic<int> started{0};
  std::atomic<int> attempts{0};   // runs of the retried task
  std::atomic<int> order_next{0};
  std::atomic<int> order[256];    // ids in the order their tasks ran
};
Board* board = nullptr;

void map_board() {
  void* shared = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(shared != MAP_FAILED);
  board = new (shared) Board();
}
void unmap_board() { ::munmap(board, sizeof(Board)); }

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
// Returns how long it ran until stop_requested() (or -1 after 30 s).
int until_stop_requested() {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 30s) {
    if (procpool::this_task::stop_requested()) {
      return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
    }
    std::this_thread::sleep_for(1ms);
  }
  return -1;
}
pid_t worker_pid() { return ::getpid(); }
// Dies on its first `deaths` runs, then returns the run number.
int die_first(int deaths) {
  const int attempt = board->attempts.fetch_add(1) + 1;
  if (attempt <= deaths) ::kill(::getpid(), SIGKILL);
  return attempt;
}
// Hangs on its first `hangs` runs, then returns the run number.
int hang_first(int hangs) {
  const int attempt = board->attempts.fetch_add(1) + 1;
  if (attempt <= hangs) std::this_thread::sleep_for(60s);
  return attempt;
}
int blocker() {
  board->started.fetch_add(1);
  while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
  return -1;
}
int record(int id) {
  board->order[board->order_next.fetch_add(1)].store(id);
  return id;
}

}  // namespace

TEST_CASE("task options - timeout kills the worker of that task only: TaskTimeout, worker replaced" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  const auto start = std::chrono::steady_clock::now();
  auto slow = pool.apply_async(procpool::TaskOptions{.timeout = 200ms}, sleep_ms, 30000);
  auto fine = pool.apply_async(sleep_ms, 600);  // no limit of its own, none in the pool
  CHECK_THROWS_AS(slow.get(), procpool::TaskTimeout);
  CHECK(std::chrono::steady_clock::now() - start < 20s);
  CHECK(fine.get() == 600);
  try {
    slow.get();
  } catch (const procpool::TaskTimeout& e) {
    CHECK(std::string(e.what()).find("200 ms") != std::string::npos);
  }
  CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2; }));
  CHECK(pool.apply(sleep_ms, 1) == 1);
}

TEST_CASE("task options - timeout overrides the pool's task_timeout" * doctest::timeout(60)) {
  procpool::Pool pool([] { procpool::PoolOptions o; o.processes = 1; o.task_timeout = 100ms; return o; }());
  CHECK(pool.apply(procpool::TaskOptions{.timeout = 5000ms}, sleep_ms, 400) == 400);
  CHECK_THROWS_AS(pool.apply(sleep_ms, 3000), procpool::TaskTimeout);
}

TEST_CASE("task options - soft_timeout asks the task to stop and kills nothing" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const auto pids = pool.worker_pids();
  const int ran = pool.apply(procpool::TaskOptions{.soft_timeout = 200ms}, until_stop_requested);
  CHECK(ran >= 150);  // not before (the clock is the worker's; some slack)
  CHECK(ran < 20000);
  CHECK(pool.worker_pids() == pids);
  // The next task, without one, is not asked to stop.
  auto plain = pool.apply_async(until_stop_requested);
  std::this_thread::sleep_for(300ms);
  CHECK(!plain.ready());
  CHECK(plain.cancel());
}

TEST_CASE("task options - retries run a lost task again until it succeeds" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(2);
    CHECK(pool.apply(procpool::TaskOptions{.retries = 2}, die_first, 2) == 3);
    CHECK(board->attempts.load() == 3);
    CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2; }));
  }
  unmap_board();
}

TEST_CASE("task options - a retry whose second worker dies too fails with the attempts counted" *
          doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(2);
    try {
      pool.apply(procpool::TaskOptions{.retries = 1}, die_first, 100);
      FAIL("expected WorkerLost");
    } catch (const procpool::WorkerLost& e) {
      CHECK(std::string(e.what()).find("(attempt 2 of 2)") != std::string::npos);
    }
    CHECK(board->attempts.load() == 2);
    // Without retries, one death is final and the text is as before.
    board->attempts.store(0);
    try {
      pool.apply(die_first, 100);
      FAIL("expected WorkerLost");
    } catch (const procpool::WorkerLost& e) {
      CHECK(std::string(e.what()).find("attempt") == std::string::npos);
    }
    CHECK(board->attempts.load() == 1);
  }
  unmap_board();
}

TEST_CASE("task options - retries apply after a time-out too" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(1);
    CHECK(pool.apply(procpool::TaskOptions{.timeout = 200ms, .retries = 1}, hang_first, 1) == 2);
    board->attempts.store(0);
    try {
      pool.apply(procpool::TaskOptions{.timeout = 100ms, .retries = 2}, hang_first, 100);
      FAIL("expected TaskTimeout");
    } catch (const procpool::TaskTimeout& e) {
      CHECK(std::string(e.what()).find("(attempt 3 of 3)") != std::string::npos);
    }
    CHECK(board->attempts.load() == 3);
  }
  unmap_board();
}

TEST_CASE("task options - a cancelled task is not retried" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool([] { procpool::PoolOptions o; o.processes = 1; o.cancel_grace = 100ms; return o; }());
    auto r = pool.apply_async(procpool::TaskOptions{.retries = 3}, hang_first, 100);
    REQUIRE(test_support::eventually([] { return board->attempts.load() == 1; }));
    CHECK(r.cancel());
    CHECK_THROWS_AS(r.get(), procpool::Cancelled);
    CHECK(pool.apply(sleep_ms, 1) == 1);  // on the worker that replaced the killed one
    std::this_thread::sleep_for(200ms);
    CHECK(board->attempts.load() == 1);
  }
  unmap_board();
}

TEST_CASE("task options - higher priority starts first among queued tasks, ties in submission order" *
          doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(1);
    // A priority seen: from now on the ring holds only a short look-ahead.
    auto block = pool.apply_async(procpool::TaskOptions{.priority = -1}, blocker);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(record, i));
    for (int i = 100; i < 105; ++i) results.push_back(pool.apply_async(procpool::TaskOptions{.priority = 5}, record, i));
    for (int i = 200; i < 203; ++i) results.push_back(pool.apply_async(procpool::TaskOptions{.priority = 9}, record, i));
    board->gate.store(1);
    block.get();
    for (auto& r : results) r.get();
    std::vector<int> order;
    for (int i = 0; i < board->order_next.load(); ++i) order.push_back(board->order[i].load());
    REQUIRE(order.size() == 28);
    // At most the look-ahead of plain tasks was already in the ring before the others.
    std::size_t first = 0;
    while (first < order.size() && order[first] < 100) ++first;
    CHECK(first <= 2);
    const std::vector<int> expected_high = {200, 201, 202, 100, 101, 102, 103, 104};
    CHECK(std::vector<int>(order.begin() + static_cast<std::ptrdiff_t>(first),
                           order.begin() + static_cast<std::ptrdiff_t>(first + 8)) == expected_high);
    // The plain ones in submission order.
    std::vector<int> plain;
    for (int id : order) {
      if (id < 100) plain.push_back(id);
    }
    CHECK(std::is_sorted(plain.begin(), plain.end()));
  }
  unmap_board();
}

TEST_CASE("task options - default options leave the worker alone" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  const pid_t pid = pool.apply(worker_pid);
  for (int i = 0; i < 100; ++i) CHECK(pool.apply(procpool::TaskOptions{}, sleep_ms, 0) == 0);
  CHECK(pool.apply(worker_pid) == pid);
}
