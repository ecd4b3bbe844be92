// PoolOptions::max_pending: submission blocks while that many tasks are
// unfinished, whatever way they end; close() and terminate() release a
// blocked submitter; a callback on the result thread never blocks.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <procpool/procpool.hpp>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using test_support::eventually;

namespace {

int identity(int x) { return x; }
int fail(int x) { throw std::runtime_error("task " + std::to_string(x) + " fails"); }
int die(int) {
  ::raise(SIGKILL);
  return 0;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
// Waits until the parent sets go[0], then returns x.
int wait_for_go(procpool::SharedArray<int> go, int x) {
  while (std::atomic_ref<int>(go[0]).load() == 0) std::this_thread::sleep_for(1ms);
  return x;
}

// Serializes in the parent only when told to, so that the task fails before it is queued.
struct Fragile {
  bool fail_save = true;
  template <class Archive>
  void save(Archive& archive) const {
    if (fail_save) throw std::runtime_error("Fragile refuses to be saved");
    archive(fail_save);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(fail_save);
  }
};
int take_fragile(Fragile) { return 1; }

std::size_t unfinished(const std::vector<procpool::AsyncResult<int>>& results) {
  std::size_t n = 0;
  for (const auto& r : results) n += r.ready() ? 0 : 1;
  return n;
}

procpool::PoolOptions limited(std::size_t max_pending, int processes = 2) {
  procpool::PoolOptions options;
  options.processes = processes;
  options.max_pending = max_pending;
  return options;
}

}  // namespace

TEST_CASE("max_pending - a producer never has more than max_pending unfinished tasks" * doctest::timeout(120)) {
  procpool::Pool pool(limited(8));
  std::vector<procpool::AsyncResult<int>> results;
  std::size_t most = 0;
  for (int i = 0; i < 400; ++i) {
    results.push_back(pool.apply_async(sleep_ms, i % 3));
    // A task holds its place until its result is ready: never more than 8 are not.
    most = std::max(most, unfinished(results));
    CHECK(unfinished(results) <= 8);
  }
  CHECK(most >= 2);  // it did run ahead of the workers
  for (int i = 0; i < 400; ++i) CHECK(results[static_cast<std::size_t>(i)].get() == i % 3);
}

TEST_CASE("max_pending - the submitter blocks until a task finishes, then goes on" * doctest::timeout(60)) {
  procpool::Pool pool(limited(8));
  procpool::SharedArray<int> go(1);
  std::atomic<int> submitted{0};
  std::vector<procpool::AsyncResult<int>> results;
  std::thread producer([&] {
    for (int i = 0; i < 50; ++i) {
      results.push_back(pool.apply_async(wait_for_go, go, i));
      submitted.fetch_add(1);
    }
  });
  REQUIRE(eventually([&] { return submitted.load() == 8; }));
  // No task can finish: the ninth submission waits (a wrong limit would have gone on by now).
  std::this_thread::sleep_for(300ms);
  CHECK(submitted.load() == 8);
  std::atomic_ref<int>(go[0]).store(1);
  producer.join();
  CHECK(submitted.load() == 50);
  for (int i = 0; i < 50; ++i) CHECK(results[static_cast<std::size_t>(i)].get() == i);
}

TEST_CASE("max_pending - map's chunks count, and a single-pass input is read no further ahead" *
          doctest::timeout(60)) {
  procpool::Pool pool(limited(4));
  procpool::SharedArray<int> go(1);
  std::atomic<int> read{0};
  std::string text;
  for (int i = 0; i < 40; ++i) text += std::to_string(i) + ' ';
  std::istringstream in(text);
  // A single-pass input, counted as it is read.
  auto items = std::views::istream<int>(in) | std::views::transform([&](int i) {
                 read.fetch_add(1);
                 return std::tuple<procpool::SharedArray<int>, int>(go, i);
               });
  static_assert(!std::ranges::forward_range<decltype(items)>);
  procpool::AsyncResult<std::vector<int>> result;
  std::thread producer([&] { result = pool.starmap_async(wait_for_go, items, 1); });
  REQUIRE(eventually([&] { return read.load() >= 4; }));
  std::this_thread::sleep_for(300ms);
  // Four chunks hold the places; the fifth has been read and waits for one.
  CHECK(read.load() <= 5);
  std::atomic_ref<int>(go[0]).store(1);
  producer.join();
  std::vector<int> expected;
  for (int i = 0; i < 40; ++i) expected.push_back(i);
  CHECK(result.get() == expected);
}

TEST_CASE("max_pending - every way a task ends gives its place back" * doctest::timeout(120)) {
  procpool::PoolOptions options = limited(1);
  options.task_timeout = 300ms;
  procpool::Pool pool(options);
  // With one place, a place not given back would block the next submission for ever.
  CHECK(pool.apply(identity, 1) == 1);
  CHECK_THROWS_AS(pool.apply(fail, 2), std::runtime_error);
  CHECK_THROWS_AS(pool.apply(die, 3), procpool::WorkerLost);
  CHECK_THROWS_AS(pool.apply(sleep_ms, 5000), procpool::TaskTimeout);
  CHECK_THROWS_AS(pool.apply(take_fragile, Fragile{}), procpool::SerializationError);
  CHECK(pool.map(identity, std::vector<int>{1, 2, 3}, 1) == std::vector<int>{1, 2, 3});
  auto lazy = pool.imap(identity, std::vector<int>{4, 5, 6});
  std::vector<int> got;
  for (int v : lazy) got.push_back(v);
  CHECK(got == std::vector<int>{4, 5, 6});
  CHECK(pool.apply(identity, 7) == 7);
}

TEST_CASE("max_pending - terminate() or close() from another thread releases a blocked producer" *
          doctest::timeout(60)) {
  for (const bool terminate : {true, false}) {
    INFO((terminate ? "terminate" : "close"));
    procpool::Pool pool(limited(4));
    procpool::SharedArray<int> go(1);  // never set: the tasks never finish by themselves
    std::atomic<int> submitted{0};
    std::promise<std::exception_ptr> outcome;
    std::vector<procpool::AsyncResult<int>> results;
    std::thread producer([&] {
      try {
        for (int i = 0; i < 100; ++i) {
          results.push_back(pool.apply_async(wait_for_go, go, i));
          submitted.fetch_add(1);
        }
        outcome.set_value(nullptr);
      } catch (...) {
        outcome.set_value(std::current_exception());
      }
    });
    REQUIRE(eventually([&] { return submitted.load() == 4; }));
    std::this_thread::sleep_for(100ms);
    if (terminate) {
      pool.terminate();
    } else {
      pool.close();
    }
    auto released = outcome.get_future();
    REQUIRE(released.wait_for(10s) == std::future_status::ready);
    producer.join();
    CHECK(submitted.load() == 4);
    const std::exception_ptr error = released.get();
    REQUIRE(error != nullptr);
    CHECK_THROWS_AS(std::rethrow_exception(error), procpool::ValueError);
    pool.terminate();  // the closed pool's tasks wait for a go that never comes
    for (auto& r : results) CHECK_THROWS_AS(r.get(), procpool::PoolTerminated);
    CHECK_THROWS_AS((void)pool.apply_async(identity, 1), procpool::ValueError);
  }
}

TEST_CASE("max_pending - a then() callback that submits does not wait for a place" * doctest::timeout(60)) {
  procpool::Pool pool(limited(1));
  std::promise<std::vector<procpool::AsyncResult<int>>> submitted;
  // The callback runs on the result thread, the only one taking results here
  // (nobody waits on an AsyncResult): were it to wait for a place, none would
  // ever free.
  pool.apply_async(sleep_ms, 200).then([&](int) {
    std::vector<procpool::AsyncResult<int>> more;
    for (int i = 1; i <= 5; ++i) more.push_back(pool.apply_async(sleep_ms, i));
    submitted.set_value(std::move(more));
  });
  auto future = submitted.get_future();
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  auto more = future.get();
  for (int i = 1; i <= 5; ++i) CHECK(more[static_cast<std::size_t>(i - 1)].get() == i);
  // The places taken over the limit came back: the pool still takes tasks.
  CHECK(pool.apply(identity, 6) == 6);
}

TEST_CASE("max_pending - several producers share the places" * doctest::timeout(120)) {
  procpool::Pool pool(limited(3));
  std::vector<std::thread> producers;
  std::atomic<long> sum{0};
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      std::vector<procpool::AsyncResult<int>> results;
      for (int i = 0; i < 200; ++i) results.push_back(pool.apply_async(identity, t * 1000 + i));
      for (auto& r : results) sum.fetch_add(r.get());
    });
  }
  for (auto& p : producers) p.join();
  long expected = 0;
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 200; ++i) expected += t * 1000 + i;
  }
  CHECK(sum.load() == expected);
}
