// Robustness: workers killed at random under load; a parent killed outright.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <procpool/procpool.hpp>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int task_count = 100000;

// Shared with the workers (mapped before the pool forks them): how many times
// each task ran to its end, and how many task ends there were in all.
std::atomic<std::uint32_t>* completions = nullptr;
std::atomic<std::uint64_t>* progress = nullptr;
constexpr std::size_t shared_size = sizeof(std::atomic<std::uint32_t>) * task_count + 64;

int finish_task(int id) {
  // Some work (a few microseconds), so kills land mid-task as well as between
  // tasks, and the run lasts long enough for dozens of kills.
  volatile std::uint64_t x = 0;
  for (int i = 0; i < 2000; ++i) x = x + static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(id);
  completions[id].fetch_add(1, std::memory_order_relaxed);
  progress->fetch_add(1, std::memory_order_relaxed);
  return id;
}

constexpr int large_task_count = 1000;
constexpr std::size_t large_bytes = 300 << 10;  // past the rings: through the payload arenas

std::vector<char> pattern_for(int id, std::size_t size) {
  std::vector<char> bytes(size);
  for (std::size_t i = 0; i < size; i += 64) bytes[i] = static_cast<char>(id * 31 + static_cast<int>(i / 64));
  return bytes;
}

// A large argument that must arrive intact, and a large result.
std::vector<char> large_task(const std::vector<char>& in, int id) {
  if (in != pattern_for(id, in.size())) throw std::runtime_error("argument corrupted");
  completions[id].fetch_add(1, std::memory_order_relaxed);
  progress->fetch_add(1, std::memory_order_relaxed);
  return pattern_for(id + 1, in.size());
}

// Maps the counters the workers bump (before the pool forks them).
void* map_counters() {
  void* shared = ::mmap(nullptr, shared_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return nullptr;
  completions = static_cast<std::atomic<std::uint32_t>*>(shared);
  progress = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(shared) + shared_size - 64);
  return shared;
}

// SIGKILLs a random worker of `pool` every 2 + (0..3) ms (`seed`), from a thread of its own, until destroyed.
class WorkerKiller {
 public:
  WorkerKiller(procpool::Pool& pool, unsigned seed) : thread_([this, &pool, seed] { run(pool, seed); }) {}
  ~WorkerKiller() {
    stop_ = true;
    thread_.join();
  }
  int kills() const { return kills_.load(); }

 private:
  void run(procpool::Pool& pool, unsigned seed) {
    std::mt19937 rng(seed);
    std::uint64_t seen = 0;
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 4));
      // Never two kills without a task ending in between: a replacement that
      // starts slower than the kill rate (as under TSan) must not starve the test.
      if (progress->load() == seen) continue;
      seen = progress->load();
      const auto pids = pool.worker_pids();
      if (!pids.empty()) {
        ::kill(pids[rng() % pids.size()], SIGKILL);
        ++kills_;
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> kills_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("chaos - 100,000 tasks while workers are SIGKILLed every few milliseconds" * doctest::timeout(300)) {
  void* shared = map_counters();
  REQUIRE(shared != nullptr);

  const auto fds = test_support::open_fd_count();
  const auto shm = test_support::dev_shm();
  const auto children = test_support::children_of(::getpid());
  int values = 0;
  int lost = 0;
  std::vector<bool> has_value(task_count, false);
  int other = 0;
  int kills = 0;
  {
    procpool::Pool pool(2);
    auto killer = std::make_unique<WorkerKiller>(pool, 12345);
    std::vector<procpool::AsyncResult<int>> results;
    results.reserve(task_count);
    for (int i = 0; i < task_count; ++i) results.push_back(pool.apply_async(finish_task, i));
    for (int i = 0; i < task_count; ++i) {
      try {
        if (results[static_cast<std::size_t>(i)].get() == i) {
          ++values;
          has_value[static_cast<std::size_t>(i)] = true;
        }
      } catch (const procpool::WorkerLost&) {
        ++lost;
      } catch (...) {
        ++other;
      }
    }
    kills = killer->kills();
    killer.reset();
    CHECK(pool.size() == 2);
    CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2; }));
    CHECK(pool.apply(finish_task, 0) == 0);  // still serving
    completions[0].fetch_sub(1);
  }
  MESSAGE("kills: " << kills << ", values: " << values << ", lost: " << lost);
  CHECK(kills > 20);
  CHECK(other == 0);
  CHECK(values + lost == task_count);
  int twice = 0;
  int valued_but_not_run_once = 0;
  for (int i = 0; i < task_count; ++i) {
    if (completions[i].load() > 1) ++twice;
    if (has_value[static_cast<std::size_t>(i)] && completions[i].load() != 1) ++valued_but_not_run_once;
  }
  CHECK(twice == 0);                    // no task ran twice to completion
  CHECK(valued_but_not_run_once == 0);  // every value came from exactly one run
  CHECK(test_support::open_fd_count() == fds);
  CHECK(test_support::dev_shm() == shm);
  CHECK(test_support::children_of(::getpid()) == children);
  ::munmap(shared, shared_size);
}

TEST_CASE("chaos - large payloads both ways while workers are SIGKILLed" * doctest::timeout(300)) {
  void* shared = map_counters();
  REQUIRE(shared != nullptr);
  const auto fds = test_support::open_fd_count();
  const auto shm = test_support::dev_shm();
  int values = 0;
  int lost = 0;
  int other = 0;
  int kills = 0;
  {
    procpool::Pool pool(2);
    auto killer = std::make_unique<WorkerKiller>(pool, 777);
    // Large and small tasks mixed, a window of them in flight.
    std::vector<procpool::AsyncResult<std::vector<char>>> results;
    std::vector<procpool::AsyncResult<int>> small;
    for (int i = 0; i < large_task_count; ++i) {
      results.push_back(pool.apply_async(large_task, pattern_for(i, large_bytes), i));
      small.push_back(pool.apply_async(finish_task, large_task_count + i));
    }
    for (int i = 0; i < large_task_count; ++i) {
      try {
        const auto back = results[static_cast<std::size_t>(i)].get();
        if (back == pattern_for(i + 1, large_bytes)) {
          ++values;
        } else {
          ++other;
        }
      } catch (const procpool::WorkerLost&) {
        ++lost;
      } catch (...) {
        ++other;
      }
      try {
        small[static_cast<std::size_t>(i)].get();
      } catch (const procpool::WorkerLost&) {
      }
    }
    kills = killer->kills();
    killer.reset();
    CHECK(pool.apply(large_task, pattern_for(0, large_bytes), 0) == pattern_for(1, large_bytes));  // still serving
  }
  MESSAGE("kills: " << kills << ", large values: " << values << ", lost: " << lost);
  CHECK(kills > 5);
  CHECK(other == 0);  // no corrupted argument or result, nothing but WorkerLost
  CHECK(values + lost == large_task_count);
  int twice = 0;
  for (int i = 0; i < large_task_count; ++i) {
    if (completions[i].load() > 1 + (i == 0 ? 1 : 0)) ++twice;
  }
  CHECK(twice == 0);
  CHECK(test_support::open_fd_count() == fds);
  CHECK(test_support::dev_shm() == shm);
  ::munmap(shared, shared_size);
}

TEST_CASE("chaos - a third of the tasks cancelled at random moments while workers are SIGKILLed" *
          doctest::timeout(300)) {
  void* shared = map_counters();
  REQUIRE(shared != nullptr);
  constexpr int n = 20000;
  const auto fds = test_support::open_fd_count();
  const auto shm = test_support::dev_shm();
  const auto children = test_support::children_of(::getpid());
  std::vector<procpool::AsyncResult<int>> results(n);
  std::vector<std::atomic<int>> endings(n);      // callbacks run per result: exactly one each
  std::vector<std::atomic<int>> cancel_said(n);  // cancel() returned true
  std::atomic<int> submitted{0};
  int values = 0, cancelled = 0, lost = 0, timed_out = 0, other = 0, kills = 0;
  {
    procpool::Pool pool(2);
    auto killer = std::make_unique<WorkerKiller>(pool, 4242);
    // Cancels a third of the submitted tasks, at random moments: queued, in a ring, running or done.
    std::thread canceller([&] {
      std::mt19937 rng(99);
      for (int i = 0; i < n / 3; ++i) {
        int have = 0;
        while ((have = submitted.load()) == 0) std::this_thread::yield();
        const int victim = static_cast<int>(rng() % static_cast<unsigned>(have));
        if (results[static_cast<std::size_t>(victim)].cancel()) cancel_said[static_cast<std::size_t>(victim)] = 1;
        if (rng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
      }
    });
    for (int i = 0; i < n; ++i) {
      // Some with a time limit and a retry, so retries race the kills and the cancels too.
      auto r = i % 4 == 0 ? pool.apply_async(procpool::TaskOptions{.timeout = 5000ms, .retries = 1}, finish_task, i)
                          : pool.apply_async(finish_task, i);
      r.then([&endings, i](int) { endings[static_cast<std::size_t>(i)].fetch_add(1); },
             [&endings, i](std::exception_ptr) { endings[static_cast<std::size_t>(i)].fetch_add(1); });
      results[static_cast<std::size_t>(i)] = std::move(r);
      submitted.store(i + 1);
    }
    canceller.join();
    for (int i = 0; i < n; ++i) {
      auto& r = results[static_cast<std::size_t>(i)];
      try {
        const int value = r.get();  // outside CHECK, which would swallow the error
        CHECK(value == i);
        ++values;
        // A value comes from one run; a retried task's killed attempt may have
        // reached its end before its worker died unpublished.
        CHECK(completions[i].load() >= 1u);
        CHECK(completions[i].load() <= (i % 4 == 0 ? 2u : 1u));
      } catch (const procpool::Cancelled&) {
        ++cancelled;
        CHECK(cancel_said[static_cast<std::size_t>(i)].load() == 1);
      } catch (const procpool::WorkerLost&) {
        ++lost;
      } catch (const procpool::TaskTimeout&) {
        ++timed_out;
      } catch (...) {
        ++other;
      }
    }
    kills = killer->kills();
    killer.reset();
    CHECK(test_support::eventually([&] { return pool.worker_pids().size() == 2; }));
    CHECK(pool.apply(finish_task, 0) == 0);  // still serving
    completions[0].fetch_sub(1);
  }
  MESSAGE("kills: " << kills << ", values: " << values << ", cancelled: " << cancelled << ", lost: " << lost
                    << ", timed out: " << timed_out);
  CHECK(other == 0);
  CHECK(values + cancelled + lost + timed_out == n);
  CHECK(cancelled > 0);
  int twice = 0;
  int not_once = 0;
  for (int i = 0; i < n; ++i) {
    if (completions[i].load() > (i % 4 == 0 ? 2u : 1u)) ++twice;
    if (endings[static_cast<std::size_t>(i)].load() != 1) ++not_once;
  }
  CHECK(twice == 0);     // no task without retries ran to completion twice; none ran more than its attempts
  CHECK(not_once == 0);  // every result ended exactly once
  CHECK(test_support::open_fd_count() == fds);
  CHECK(test_support::dev_shm() == shm);
  CHECK(test_support::eventually([&] { return test_support::children_of(::getpid()) == children; }));
  ::munmap(shared, shared_size);
}

TEST_CASE("chaos - when the parent is SIGKILLed, its workers and zygote are gone within a second" *
          doctest::timeout(60)) {
  // Orphans are re-parented to us, so we can see them end and reap them.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t parent = ::fork();
  REQUIRE(parent >= 0);
  if (parent == 0) {
    procpool::Pool pool(2);
    (void)pool.apply([](int x) { return x; }, 1);
    (void)pool.worker_pids();  // returns once the zygote has forked both workers
    const char byte = 'r';
    [[maybe_unused]] auto n = ::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  // The doomed parent's family: its zygote and the zygote's workers.
  std::vector<pid_t> family;
  for (pid_t zygote : test_support::children_of(parent)) {
    family.push_back(zygote);
    for (pid_t worker : test_support::children_of(zygote)) family.push_back(worker);
  }
  CHECK(family.size() == 3);
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  const bool all_gone = test_support::eventually(
      [&] {
        for (pid_t pid : family) {
          if (test_support::alive(pid)) return false;
        }
        return true;
      },
      1s);
  MESSAGE("gone after " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                  killed_at)
                              .count()
                        << " ms");
  CHECK(all_gone);
  // Reap whatever was re-parented to us: no zombie is left. (A multi-threaded
  // process shows a zombie leader a moment before it can be reaped.)
  CHECK(test_support::eventually(
      [&] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return std::all_of(family.begin(), family.end(),
                           [](pid_t pid) { return test_support::proc_state(pid).empty(); });
      },
      1s));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}
