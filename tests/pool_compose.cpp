// Composition: then() chains, when_all/when_any/as_completed, co_await, and
// AsyncResult arguments that make dependencies.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <procpool/procpool.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <variant>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// Shared with the workers (mapped before a pool forks them).
struct Board {
  std::atomic<int> gate{0};  // gated tasks wait for it to open
  std::atomic<int> runs{0};  // tasks that counted themselves
};
Board* board = nullptr;

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int inc(int x) { return x + 1; }
int counted_inc(int x) {
  board->runs.fetch_add(1);
  return x + 1;
}
int sleep_then(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
int gated(int value) {
  while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
  return value;
}
int fail_with(int code) { throw std::invalid_argument("bad code " + std::to_string(code)); }
void nothing() {}
int sum(const std::vector<int>& xs) {
  int total = 0;
  for (int x : xs) total += x;
  return total;
}
std::string greet(const std::string& who, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hi " + who + ";";
  return out;
}

// A coroutine of our own, not procpool's: co_await must work in any.
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

Detached await_into(procpool::AsyncResult<int> r, std::atomic<int>& out, std::atomic<bool>& threw) {
  try {
    out = co_await r;
  } catch (const std::invalid_argument&) {
    threw = true;
  }
}

procpool::AsyncResult<int> pipeline(procpool::Pool& pool, int x) {
  const int a = co_await pool.apply_async(square, x);
  const int b = co_await pool.apply_async(add, a, 1);
  co_return b * 2;
}

procpool::AsyncResult<void> failing_pipeline(procpool::Pool& pool) {
  co_await pool.apply_async(fail_with, 5);
  FAIL("co_await of a failed result did not throw");
}

}  // namespace

TEST_CASE("compose - then() chains values and returns AsyncResult<U>" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  procpool::AsyncResult<std::string> text = pool.apply_async(square, 7)
                                                .then([](int v) { return v + 1; })
                                                .then([](int v) { return std::to_string(v); });
  CHECK(text.get() == "50");
  // A void source, a void callback.
  int ran = 0;
  procpool::AsyncResult<void> done = pool.apply_async(nothing).then([&] { ++ran; });
  done.get();
  CHECK(ran == 1);
  // On a finished result, the callback runs at once, on this thread.
  auto ready = pool.apply_async(square, 3);
  ready.wait();
  const auto here = std::this_thread::get_id();
  std::thread::id where;
  auto after = ready.then([&](int v) {
    where = std::this_thread::get_id();
    return v;
  });
  CHECK(after.ready());
  CHECK(where == here);
  CHECK(after.get() == 9);
}

TEST_CASE("compose - errors flow down a then() chain; a throwing callback fails its result" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::atomic<int> calls{0};
  auto chained = pool.apply_async(fail_with, 3)
                     .then([&](int v) {
                       ++calls;
                       return v * 2;
                     })
                     .then([&](int v) {
                       ++calls;
                       return v + 1;
                     });
  CHECK_THROWS_WITH_AS(chained.get(), doctest::Contains("bad code 3"), std::invalid_argument);
  CHECK(calls == 0);
  auto thrown = pool.apply_async(square, 2).then([](int) -> int { throw std::out_of_range("from the callback"); });
  CHECK_THROWS_WITH_AS(thrown.get(), "from the callback", std::out_of_range);
  auto after_throw = thrown.then([](int v) { return v; });
  CHECK_THROWS_AS(after_throw.get(), std::out_of_range);
  // The two-argument form keeps its meaning (returns nothing, runs one of the two).
  std::atomic<int> errors{0};
  pool.apply_async(fail_with, 1).then([](const int&) {}, [&](std::exception_ptr) { ++errors; });
  pool.close();
  pool.join();
  CHECK(errors == 1);
}

TEST_CASE("compose - a callback that returns an AsyncResult flattens the chain" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  procpool::AsyncResult<int> r =
      pool.apply_async(square, 4).then([&pool](int v) { return pool.apply_async(add, v, 100); });
  CHECK(r.get() == 116);
  procpool::AsyncResult<int> failed =
      pool.apply_async(square, 4).then([&pool](int v) { return pool.apply_async(fail_with, v); });
  CHECK_THROWS_WITH_AS(failed.get(), doctest::Contains("bad code 16"), std::invalid_argument);
}

TEST_CASE("compose - cancel() on a then() result keeps the callback from running" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(1);
  auto source = pool.apply_async(gated, 1);
  std::atomic<int> calls{0};
  auto next = source.then([&](int v) {
    ++calls;
    return v;
  });
  CHECK(next.cancel());
  CHECK_THROWS_AS(next.get(), procpool::Cancelled);
  board->gate = 1;
  CHECK(source.get() == 1);  // the source goes on
  CHECK(calls == 0);
}

TEST_CASE("compose - when_all of a vector: values in order, the first error by position" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(sleep_then, (20 - i) % 7, i));
  procpool::AsyncResult<std::vector<int>> all = procpool::when_all(rs);
  const std::vector<int> values = all.get();
  REQUIRE(values.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(values[static_cast<std::size_t>(i)] == i);
  CHECK(rs[3].get() == 3);  // the inputs stay usable

  std::vector<procpool::AsyncResult<int>> mixed;
  mixed.push_back(pool.apply_async(square, 2));
  mixed.push_back(pool.apply_async(sleep_then, 100, 0).then([](int) -> int { throw std::runtime_error("second"); }));
  mixed.push_back(pool.apply_async(fail_with, 7));  // finishes first, but is later by position
  CHECK_THROWS_WITH_AS(procpool::when_all(mixed).get(), "second", std::runtime_error);

  CHECK(procpool::when_all(std::vector<procpool::AsyncResult<int>>{}).get().empty());
  std::vector<procpool::AsyncResult<void>> voids{pool.apply_async(nothing), pool.apply_async(nothing)};
  procpool::AsyncResult<void> both = procpool::when_all(voids);
  CHECK_NOTHROW(both.get());
  std::vector<procpool::AsyncResult<int>> with_empty(1);
  CHECK_THROWS_AS((void)procpool::when_all(with_empty), procpool::ValueError);
}

TEST_CASE("compose - when_all of results of several types gives a tuple" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  auto all = procpool::when_all(pool.apply_async(square, 5), pool.apply_async(greet, std::string("ann"), 2),
                                pool.apply_async(nothing));
  const std::tuple<int, std::string, std::monostate> t = all.get();
  CHECK(std::get<0>(t) == 25);
  CHECK(std::get<1>(t) == "hi ann;hi ann;");
  auto failing = procpool::when_all(pool.apply_async(square, 1), pool.apply_async(fail_with, 9));
  CHECK_THROWS_WITH_AS(failing.get(), doctest::Contains("bad code 9"), std::invalid_argument);
}

TEST_CASE("compose - when_any gives the index of the first to finish" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(3);  // two held by gated tasks
  std::vector<procpool::AsyncResult<int>> rs;
  rs.push_back(pool.apply_async(gated, 0));
  rs.push_back(pool.apply_async(sleep_then, 20, 1));
  CHECK(procpool::when_any(rs).get() == 1);
  // A failure counts as finishing.
  std::vector<procpool::AsyncResult<int>> failing{pool.apply_async(gated, 0), pool.apply_async(fail_with, 2)};
  CHECK(procpool::when_any(failing).get() == 1);
  CHECK_THROWS_AS((void)procpool::when_any(std::vector<procpool::AsyncResult<int>>{}), procpool::ValueError);
  board->gate = 1;
}

TEST_CASE("compose - as_completed yields each result once, in completion order" * doctest::timeout(60)) {
  procpool::Pool pool(3);
  std::vector<procpool::AsyncResult<int>> rs;
  rs.push_back(pool.apply_async(sleep_then, 600, 0));
  rs.push_back(pool.apply_async(sleep_then, 10, 1));
  rs.push_back(pool.apply_async(sleep_then, 300, 2));
  std::vector<int> order;
  for (procpool::AsyncResult<int>& r : procpool::as_completed(rs)) order.push_back(r.get());
  CHECK(order == std::vector<int>{1, 2, 0});
  static_assert(std::ranges::input_range<procpool::AsCompleted<int>>);

  std::vector<procpool::AsyncResult<int>> many;
  for (int i = 0; i < 200; ++i) many.push_back(i % 10 == 0 ? pool.apply_async(fail_with, i) : pool.apply_async(square, i));
  std::set<int> seen;
  int failures = 0;
  for (auto& r : procpool::as_completed(many)) {
    CHECK(r.ready());
    if (r.successful()) {
      seen.insert(r.get());
    } else {
      ++failures;
    }
  }
  CHECK(seen.size() == 180);
  CHECK(failures == 20);
  std::vector<procpool::AsyncResult<int>> none;
  CHECK(procpool::as_completed(none).begin() == procpool::as_completed(none).end());
}

TEST_CASE("compose - co_await in a coroutine returning AsyncResult, and in one of the user's own" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  CHECK(pipeline(pool, 3).get() == 20);
  std::vector<procpool::AsyncResult<int>> many;
  for (int i = 0; i < 50; ++i) many.push_back(pipeline(pool, i));
  for (int i = 0; i < 50; ++i) CHECK(many[static_cast<std::size_t>(i)].get() == (i * i + 1) * 2);
  CHECK_THROWS_WITH_AS(failing_pipeline(pool).get(), doctest::Contains("bad code 5"), std::invalid_argument);

  std::atomic<int> out{0};
  std::atomic<bool> threw{false};
  await_into(pool.apply_async(sleep_then, 50, 42), out, threw);
  auto ready = pool.apply_async(square, 6);
  ready.wait();
  std::atomic<int> out_ready{0};
  await_into(ready, out_ready, threw);  // ready: no suspension at all
  CHECK(out_ready == 36);
  std::atomic<int> unused{0};
  std::atomic<bool> threw_failed{false};
  await_into(pool.apply_async(fail_with, 1), unused, threw_failed);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((out != 42 || !threw_failed) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(out == 42);
  CHECK(threw_failed);
  CHECK_FALSE(threw);
}

TEST_CASE("compose - an AsyncResult argument makes a dependency" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  auto a = pool.apply_async(gated, 5);
  auto b = pool.apply_async(add, a, 10);  // returns at once: a is not ready
  auto c = pool.apply_async(greet, std::string("bo"), pool.apply_async(inc, 1));
  CHECK_FALSE(b.ready());
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(b.ready());
  board->gate = 1;
  CHECK(b.get() == 15);
  CHECK(c.get() == "hi bo;hi bo;");
  // A ready argument: queued at once.
  CHECK(pool.apply_async(square, a).get() == 25);
  // when_all's vector as an argument.
  std::vector<procpool::AsyncResult<int>> parts;
  for (int i = 1; i <= 4; ++i) parts.push_back(pool.apply_async(square, i));
  CHECK(pool.apply_async(sum, procpool::when_all(parts)).get() == 30);
  // An empty AsyncResult argument.
  CHECK_THROWS_AS((void)pool.apply_async(inc, procpool::AsyncResult<int>{}), procpool::ValueError);
}

TEST_CASE("compose - a diamond: A -> B, A -> C, B + C -> D" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  auto a = pool.apply_async(counted_inc, 1);     // 2
  auto b = pool.apply_async(square, a);          // 4
  auto c = pool.apply_async(counted_inc, a);     // 3
  auto d = pool.apply_async(add, b, c);          // 7
  CHECK(d.get() == 7);
  CHECK(board->runs == 2);
}

TEST_CASE("compose - a failed argument fails the dependent task without running it" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  auto bad = pool.apply_async(fail_with, 4);
  auto dependent = pool.apply_async(counted_inc, bad);
  auto second = pool.apply_async(counted_inc, dependent);
  CHECK_THROWS_WITH_AS(dependent.get(), doctest::Contains("bad code 4"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(second.get(), doctest::Contains("bad code 4"), std::invalid_argument);
  // Two arguments, one failing: the task never runs.
  auto slow = pool.apply_async(sleep_then, 200, 1);
  auto two = pool.apply_async(add, slow, pool.apply_async(fail_with, 8));
  CHECK_THROWS_AS(two.get(), std::invalid_argument);
  (void)slow.get();
  pool.close();
  pool.join();
  CHECK(board->runs == 0);
}

TEST_CASE("compose - cancelling a dependency's source fails the dependents with Cancelled" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(1);
  auto source = pool.apply_async(gated, 1);
  auto dependent = pool.apply_async(counted_inc, source);
  auto then_result = source.then([](int v) { return v; });
  CHECK(source.cancel());
  CHECK_THROWS_AS(dependent.get(), procpool::Cancelled);
  CHECK_THROWS_AS(then_result.get(), procpool::Cancelled);
  // Cancelling the dependent itself before its argument is ready: it never runs.
  auto later = pool.apply_async(sleep_then, 100, 1);
  auto never = pool.apply_async(counted_inc, later);
  CHECK(never.cancel());
  CHECK_THROWS_AS(never.get(), procpool::Cancelled);
  CHECK(later.get() == 1);
  board->gate = 1;
  pool.close();
  pool.join();
  CHECK(board->runs == 0);
}

TEST_CASE("compose - a chain of 10,000 dependent tasks" * doctest::timeout(240)) {
  procpool::Pool pool(2);
  procpool::AsyncResult<int> link = pool.apply_async(inc, 0);
  for (int i = 1; i < 10000; ++i) link = pool.apply_async(inc, link);
  CHECK(link.get() == 10000);
  // A chain that fails at its head fails link by link without running, and
  // without going 10,000 calls deep on any thread's stack.
  procpool::AsyncResult<int> failing = pool.apply_async(sleep_then, 100, 0).then([](int) -> int {
    throw std::runtime_error("head failed");
  });
  for (int i = 1; i < 10000; ++i) failing = pool.apply_async(inc, failing);
  CHECK_THROWS_WITH_AS(failing.get(), "head failed", std::runtime_error);
  // Likewise a then() chain.
  procpool::AsyncResult<int> thens = pool.apply_async(sleep_then, 100, 0);
  for (int i = 0; i < 10000; ++i) thens = thens.then([](int v) { return v + 1; });
  CHECK(thens.get() == 10000);
}

TEST_CASE("compose - close() and join() wait for tasks still waiting for their arguments" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  auto head = pool.apply_async(gated, 1);
  procpool::AsyncResult<int> tail = head;
  for (int i = 0; i < 20; ++i) tail = pool.apply_async(counted_inc, tail);
  pool.close();
  CHECK_THROWS_AS((void)pool.apply_async(inc, tail), procpool::ValueError);
  board->gate = 1;
  pool.join();
  CHECK(tail.ready());
  CHECK(tail.get() == 21);
  CHECK(board->runs == 20);
}

TEST_CASE("compose - terminate() fails tasks waiting for their arguments" * doctest::timeout(60)) {
  test_support::SharedObject<Board> scope(board);
  procpool::Pool pool(2);
  auto head = pool.apply_async(gated, 1);
  auto dependent = pool.apply_async(counted_inc, head);
  pool.terminate();
  CHECK_THROWS_AS(dependent.get(), procpool::PoolTerminated);
  board->gate = 1;
}

TEST_CASE("compose - a dependency on another pool's result" * doctest::timeout(60)) {
  procpool::Pool first(1);
  procpool::Pool second(1);
  auto a = first.apply_async(sleep_then, 50, 6);
  auto b = second.apply_async(square, a);
  CHECK(b.get() == 36);
}
