// AsyncResult::cancel() on the local pool: queued, in a ring, running, done.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <procpool/procpool.hpp>
#include <random>
#include <stop_token>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int max_tasks = 20000;

// Shared with the workers (mapped before a pool forks them).
struct Board {
  std::atomic<int> gate{0};        // blocked tasks wait for it to open
  std::atomic<int> started{0};     // tasks that reached their body
  std::atomic<int> saw_stop{0};    // tasks that saw stop_requested() or their stop_token stop
  std::atomic<int> callbacks{0};   // std::stop_callbacks that ran
  std::atomic<std::uint32_t> runs[max_tasks];  // per task id: runs that reached the end
};
Board* board = nullptr;

Board* map_board() {
  void* shared = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(shared != MAP_FAILED);
  board = new (shared) Board();
  return board;
}
void unmap_board() { ::munmap(board, sizeof(Board)); }

int blocker() {
  board->started.fetch_add(1);
  while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
  return -1;
}
int count_run(int id) {
  board->runs[id].fetch_add(1);
  return id;
}
int short_task(int id) {
  volatile int x = 0;
  for (int i = 0; i < 2000; ++i) x = x + i;
  board->runs[id].fetch_add(1);
  return id;
}
// Polls this_task::stop_requested() for up to 30 s.
int until_stop_requested() {
  board->started.fetch_add(1);
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end) {
    if (procpool::this_task::stop_requested()) {
      board->saw_stop.fetch_add(1);
      return 1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return 0;
}
// Waits on its stop_token through a std::stop_callback and a condition variable.
int until_stop_token() {
  std::mutex m;
  std::condition_variable_any cv;
  const std::stop_token token = procpool::this_task::stop_token();
  std::stop_callback callback(token, [] { board->callbacks.fetch_add(1); });
  board->started.fetch_add(1);
  std::unique_lock lock(m);
  cv.wait_for(lock, token, 30s, [] { return false; });
  if (token.stop_requested()) board->saw_stop.fetch_add(1);
  return 1;
}
int ignore_stop() {
  board->started.fetch_add(1);
  std::this_thread::sleep_for(60s);
  return 0;
}
bool stop_requested_at_start() { return procpool::this_task::stop_requested(); }
int slow_item(int id) {
  std::this_thread::sleep_for(1ms);
  board->runs[id].fetch_add(1);
  return id;
}
// Items from 3 on wait for the gate.
int gated_item(int id) {
  if (id >= 3) {
    board->started.fetch_add(1);
    while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
  }
  board->runs[id].fetch_add(1);
  return id;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

template <class T>
bool is_cancelled(procpool::AsyncResult<T>& r) {
  try {
    r.get();
  } catch (const procpool::Cancelled&) {
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("cancel - a task in a worker's ring never runs; the others do" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(1);
    auto block = pool.apply_async(blocker);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(count_run, i));
    for (int i = 0; i < 10; i += 2) CHECK(results[static_cast<std::size_t>(i)].cancel());
    for (int i = 0; i < 10; i += 2) {
      CHECK(results[static_cast<std::size_t>(i)].ready());  // at once
      CHECK(is_cancelled(results[static_cast<std::size_t>(i)]));
    }
    board->gate.store(1);
    CHECK(block.get() == -1);
    for (int i = 1; i < 10; i += 2) CHECK(results[static_cast<std::size_t>(i)].get() == i);
    CHECK(pool.apply(count_run, 11) == 11);  // after the others, on the one worker
    for (int i = 0; i < 10; ++i) CHECK(board->runs[i].load() == (i % 2 == 0 ? 0u : 1u));
  }
  unmap_board();
}

TEST_CASE("cancel - tasks waiting in the backlog never run; cancelling is cheap for thousands" * doctest::timeout(120)) {
  map_board();
  {
    procpool::Pool pool(1);
    auto block = pool.apply_async(blocker);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    // Past the ring's 1024 tasks: most wait in the parent's backlog.
    constexpr int n = 5000;
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < n; ++i) results.push_back(pool.apply_async(count_run, i));
    const auto start = std::chrono::steady_clock::now();
    int cancelled = 0;
    for (int i = 0; i < n; ++i) {
      if (i % 3 != 0) cancelled += results[static_cast<std::size_t>(i)].cancel() ? 1 : 0;
    }
    const auto took = std::chrono::steady_clock::now() - start;
    MESSAGE("cancelling " << cancelled << " tasks took "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(cancelled == n - (n + 2) / 3);
    CHECK(took < 20s);
    board->gate.store(1);
    CHECK(block.get() == -1);
    for (int i = 0; i < n; ++i) {
      auto& r = results[static_cast<std::size_t>(i)];
      if (i % 3 == 0) {
        CHECK(r.get() == i);
      } else {
        CHECK(is_cancelled(r));
      }
    }
    for (int i = 0; i < n; ++i) CHECK(board->runs[i].load() == (i % 3 == 0 ? 1u : 0u));
  }
  unmap_board();
}

TEST_CASE("cancel - a running task sees stop_requested(); the result fails with Cancelled at once" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(1);
    const auto pids = pool.worker_pids();
    auto r = pool.apply_async(until_stop_requested);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    CHECK(r.cancel());
    CHECK(r.ready());
    CHECK(is_cancelled(r));
    CHECK(!r.cancel());  // already finished (cancelled)
    CHECK(test_support::eventually([] { return board->saw_stop.load() == 1; }));
    // The task returned within the grace: its worker stays, and the next task is not asked to stop.
    CHECK(pool.apply(stop_requested_at_start) == false);
    CHECK(pool.worker_pids() == pids);
  }
  unmap_board();
}

TEST_CASE("cancel - the running task's stop_token stops and its stop_callback runs" * doctest::timeout(60)) {
  map_board();
  {
    // A long grace: a loaded machine must not turn a slow stop into a kill here.
    procpool::Pool pool([] { procpool::PoolOptions o; o.processes = 1; o.cancel_grace = 20s; return o; }());
    const auto pids = pool.worker_pids();
    auto r = pool.apply_async(until_stop_token);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    CHECK(r.cancel());
    CHECK(is_cancelled(r));
    CHECK(test_support::eventually([] { return board->callbacks.load() == 1 && board->saw_stop.load() == 1; }, 15s));
    // A token asked for by the next task does not start stopped.
    board->started.store(0);
    auto next = pool.apply_async(until_stop_token);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    std::this_thread::sleep_for(50ms);
    CHECK(board->callbacks.load() == 1);
    CHECK(next.cancel());
    CHECK(test_support::eventually([] { return board->callbacks.load() == 2 && board->saw_stop.load() == 2; }, 15s));
    CHECK(board->callbacks.load() == 2);
    CHECK(board->saw_stop.load() == 2);
    CHECK(pool.worker_pids() == pids);
  }
  unmap_board();
}

TEST_CASE("cancel - a task that ignores the request is killed after cancel_grace; its worker is replaced" *
          doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool([] { procpool::PoolOptions o; o.processes = 1; o.cancel_grace = 200ms; return o; }());
    const auto pids = pool.worker_pids();
    auto r = pool.apply_async(ignore_stop);
    REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    CHECK(r.cancel());
    CHECK(is_cancelled(r));  // at once, not after the grace
    CHECK(test_support::eventually([&] {
      const auto now = pool.worker_pids();
      return now.size() == 1 && now != pids;
    }, 20s));
    CHECK(!test_support::alive(pids[0]));
    CHECK(pool.apply(sleep_ms, 1) == 1);
    CHECK(is_cancelled(r));  // still Cancelled, not WorkerLost
  }
  unmap_board();
}

TEST_CASE("cancel - after completion it returns false and the value stays" * doctest::timeout(30)) {
  map_board();
  {
    procpool::Pool pool(1);
    auto r = pool.apply_async(count_run, 3);
    CHECK(r.get() == 3);
    CHECK(!r.cancel());
    CHECK(r.get() == 3);
    CHECK(r.successful());
  }
  unmap_board();
}

TEST_CASE("cancel - racing the hand-over to a worker: exactly one outcome, never both" * doctest::timeout(120)) {
  map_board();
  {
    procpool::Pool pool(2);
    constexpr int n = 3000;
    std::vector<procpool::AsyncResult<int>> results;
    std::vector<char> cancelled(n, 0);
    for (int i = 0; i < n; ++i) {
      results.push_back(pool.apply_async(short_task, i));
      // Right away, or a little later: before, during or after its run.
      if (i % 4 == 1) std::this_thread::sleep_for(std::chrono::microseconds(i % 50));
      if (i % 2 == 1) cancelled[static_cast<std::size_t>(i)] = results.back().cancel() ? 1 : 0;
    }
    int values = 0;
    int cancels = 0;
    for (int i = 0; i < n; ++i) {
      auto& r = results[static_cast<std::size_t>(i)];
      if (is_cancelled(r)) {
        ++cancels;
        CHECK(cancelled[static_cast<std::size_t>(i)] == 1);
        CHECK(board->runs[i].load() <= 1u);
      } else {
        ++values;
        CHECK(cancelled[static_cast<std::size_t>(i)] == 0);
        CHECK(r.get() == i);
        CHECK(board->runs[i].load() == 1u);
      }
    }
    MESSAGE("values: " << values << ", cancelled: " << cancels);
    CHECK(values + cancels == n);
    CHECK(pool.apply(short_task, 0) == 0);
  }
  unmap_board();
}

TEST_CASE("cancel - many threads submitting and cancelling at once" * doctest::timeout(180)) {
  map_board();
  {
    procpool::Pool pool(2);
    constexpr int threads = 4;
    constexpr int per_thread = 400;
    std::vector<procpool::AsyncResult<int>> results(threads * per_thread);
    std::vector<std::atomic<int>> cancel_said(threads * per_thread);
    std::atomic<int> submitted{0};
    std::vector<std::thread> pool_threads;
    for (int t = 0; t < threads; ++t) {
      pool_threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) + 1);
        for (int i = 0; i < per_thread; ++i) {
          const int id = t * per_thread + i;
          results[static_cast<std::size_t>(id)] = pool.apply_async(short_task, id);
          submitted.fetch_add(1);
          // Cancel one of our own tasks, sometimes an older one.
          if (rng() % 3 == 0) {
            const int victim = t * per_thread + static_cast<int>(rng() % static_cast<unsigned>(i + 1));
            if (results[static_cast<std::size_t>(victim)].cancel()) cancel_said[static_cast<std::size_t>(victim)] = 1;
          }
        }
      });
    }
    for (auto& t : pool_threads) t.join();
    REQUIRE(submitted.load() == threads * per_thread);
    int cancels = 0;
    for (int id = 0; id < threads * per_thread; ++id) {
      auto& r = results[static_cast<std::size_t>(id)];
      if (is_cancelled(r)) {
        ++cancels;
        CHECK(cancel_said[static_cast<std::size_t>(id)].load() == 1);
      } else {
        CHECK(r.get() == id);
        CHECK(board->runs[id].load() == 1u);
      }
    }
    MESSAGE("cancelled: " << cancels);
    CHECK(cancels > 0);
  }
  unmap_board();
}

TEST_CASE("cancel - racing a time-out kill: one outcome, Cancelled or TaskTimeout" * doctest::timeout(120)) {
  map_board();
  {
    procpool::Pool pool([] { procpool::PoolOptions o; o.processes = 2; o.task_timeout = 100ms; o.cancel_grace = 100ms; return o; }());
    int cancels = 0;
    int timeouts = 0;
    for (int round = 0; round < 20; ++round) {
      auto r = pool.apply_async(sleep_ms, 5000);
      std::this_thread::sleep_for(std::chrono::milliseconds(80 + round * 3));
      const bool said = r.cancel();
      try {
        r.get();
        FAIL("no value expected");
      } catch (const procpool::Cancelled&) {
        ++cancels;
        CHECK(said);
      } catch (const procpool::TaskTimeout&) {
        ++timeouts;
        CHECK(!said);
      }
    }
    MESSAGE("cancelled: " << cancels << ", timed out: " << timeouts);
    CHECK(cancels + timeouts == 20);
    CHECK(pool.apply(sleep_ms, 1) == 1);
    CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2; }));
  }
  unmap_board();
}

TEST_CASE("cancel - a map_async result cancels every chunk" * doctest::timeout(120)) {
  map_board();
  {
    procpool::Pool pool(2);
    // Both workers held: every chunk is still in a ring or in the backlog when cancelled.
    auto block1 = pool.apply_async(blocker);
    auto block2 = pool.apply_async(blocker);
    REQUIRE(test_support::eventually([] { return board->started.load() == 2; }));
    std::vector<int> items(4000);
    for (int i = 0; i < 4000; ++i) items[static_cast<std::size_t>(i)] = i;
    auto r = pool.map_async(slow_item, items, 1);
    CHECK(r.cancel());
    CHECK(is_cancelled(r));
    CHECK(!r.cancel());
    board->gate.store(1);
    CHECK(block1.get() == -1);
    CHECK(block2.get() == -1);
    CHECK(pool.apply(count_run, 4001) == 4001);
    std::this_thread::sleep_for(100ms);
    int ran = 0;
    for (int i = 0; i < 4000; ++i) ran += static_cast<int>(board->runs[i].load());
    CHECK(ran == 0);
  }
  unmap_board();
}

TEST_CASE("cancel - destroying an imap iterator before its end cancels its unstarted chunks" * doctest::timeout(60)) {
  map_board();
  {
    procpool::Pool pool(1);
    std::vector<int> items(100);
    for (int i = 0; i < 100; ++i) items[static_cast<std::size_t>(i)] = i;
    {
      auto it = pool.imap(gated_item, items);
      for (int i = 0; i < 3; ++i) CHECK(it.next() == i);
      // Item 3 runs (held at the gate); a few more were submitted behind it.
      REQUIRE(test_support::eventually([] { return board->started.load() == 1; }));
    }
    board->gate.store(1);
    CHECK(pool.apply(count_run, 99) == 99);  // after whatever was left on the one worker
    CHECK(board->runs[3].load() == 1u);      // the running one finished
    int later = 0;
    for (int i = 4; i < 99; ++i) later += static_cast<int>(board->runs[i].load());
    CHECK(later == 0);
    pool.close();  // the abandoned imap's input is not read on close
    pool.join();
  }
  unmap_board();
}
