// AsyncResult<T>: waiting, time-outs, callbacks, and life after the pool.
#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <chrono>
#include <procpool/procpool.hpp>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

int sleep_then_return(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
int fail_with(int code) { throw std::invalid_argument("bad code " + std::to_string(code)); }
std::vector<int> numbers(int n) { return std::vector<int>(static_cast<std::size_t>(n), 7); }

}  // namespace

TEST_CASE("async_result - get(timeout) throws TimeoutError and the task goes on" * doctest::timeout(30)) {
  procpool::Pool pool(1);
  auto result = pool.apply_async(sleep_then_return, 400, 5);
  CHECK_THROWS_AS(result.get(10ms), procpool::TimeoutError);
  CHECK_FALSE(result.ready());
  CHECK(result.get(20s) == 5);
}

TEST_CASE("async_result - wait, wait(timeout), ready and successful" * doctest::timeout(30)) {
  procpool::Pool pool(1);
  auto slow = pool.apply_async(sleep_then_return, 300, 1);
  CHECK_FALSE(slow.ready());
  CHECK_THROWS_AS((void)slow.successful(), procpool::ValueError);
  CHECK_FALSE(slow.wait(5ms));
  slow.wait();
  CHECK(slow.ready());
  CHECK(slow.successful());
  CHECK(slow.wait(0ms));

  auto failing = pool.apply_async(fail_with, 3);
  CHECK(failing.wait(20s));
  CHECK_FALSE(failing.successful());
  CHECK_THROWS_WITH_AS(failing.get(), "bad code 3", std::invalid_argument);
  CHECK_THROWS_AS(failing.get(), std::invalid_argument);  // the error, every time
}

TEST_CASE("async_result - an empty result throws ValueError" * doctest::timeout(5)) {
  procpool::AsyncResult<int> empty;
  CHECK_FALSE(empty.ready());
  CHECK_THROWS_AS(empty.get(), procpool::ValueError);
  CHECK_THROWS_AS(empty.wait(), procpool::ValueError);
}

TEST_CASE("async_result - get() on an rvalue moves the value out only when no copy shares it" * doctest::timeout(30)) {
  procpool::Pool pool(1);
  auto result = pool.apply_async(numbers, 1000);
  auto copy = result;
  CHECK(std::move(result).get().size() == 1000);  // shared with `copy`: copied
  CHECK(result.ready());
  CHECK(copy.get().size() == 1000);
  result = {};
  std::this_thread::sleep_for(50ms);  // the pool drops its own reference once the result is in
  CHECK(std::move(copy).get().size() == 1000);  // the only one left: moved out
  CHECK_FALSE(copy.ready());
  CHECK_THROWS_AS(copy.get(), procpool::ValueError);
  CHECK(pool.apply_async(numbers, 3).get() == std::vector<int>{7, 7, 7});
  pool.close();
  pool.join();
}

TEST_CASE("async_result - then runs once, on the pool's result thread, with value or error" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  std::atomic<int> value{0};
  std::atomic<int> calls{0};
  std::atomic<bool> on_other_thread{false};
  const auto main_thread = std::this_thread::get_id();
  auto result = pool.apply_async(sleep_then_return, 100, 42);
  result.then([&](const int& v) {
    value = v;
    on_other_thread = std::this_thread::get_id() != main_thread;
    ++calls;
  });
  CHECK(result.get() == 42);
  CHECK(test_support::eventually([&] { return calls.load() == 1; }));
  CHECK(value == 42);
  CHECK(on_other_thread);

  std::atomic<int> errors{0};
  std::string message;
  auto failing = pool.apply_async(fail_with, 9);
  failing.then([](const int&) { FAIL("value callback called for a failed task"); },
               [&](std::exception_ptr e) {
                 try {
                   std::rethrow_exception(e);
                 } catch (const std::invalid_argument& ex) {
                   message = ex.what();
                 }
                 ++errors;
               });
  failing.wait();
  CHECK(test_support::eventually([&] { return errors.load() == 1; }));
  CHECK(message == "bad code 9");

  // Already finished: the callback runs at once, on this thread.
  bool ran_here = false;
  result.then([&](const int& v) { ran_here = v == 42 && std::this_thread::get_id() == main_thread; });
  CHECK(ran_here);

  std::atomic<int> void_calls{0};
  auto v = pool.apply_async([] {});
  v.then([&] { ++void_calls; });
  v.wait();
  CHECK(test_support::eventually([&] { return void_calls.load() == 1; }));
  CHECK(calls == 1);
}

TEST_CASE("async_result - a callback may submit more work to the pool" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  std::promise<int> chained;
  auto first = pool.apply_async(sleep_then_return, 1, 20);
  first.then([&](const int& v) {
    pool.apply_async(sleep_then_return, 1, v + 1).then([&](const int& w) { chained.set_value(w); });
  });
  CHECK(chained.get_future().get() == 21);
}

TEST_CASE("async_result - many results outlive their pool and keep their final state" * doctest::timeout(60)) {
  std::vector<procpool::AsyncResult<int>> results;
  std::vector<procpool::AsyncResult<int>> errors;
  {
    procpool::Pool pool(2);
    for (int i = 0; i < 5000; ++i) results.push_back(pool.apply_async(sleep_then_return, 0, i));
    for (int i = 0; i < 100; ++i) errors.push_back(pool.apply_async(fail_with, i));
  }  // the destructor closes and joins: nothing queued is lost
  bool all_right = true;
  for (int i = 0; i < 5000; ++i) all_right = all_right && results[static_cast<std::size_t>(i)].ready() &&
                                             results[static_cast<std::size_t>(i)].get() == i;
  CHECK(all_right);
  for (auto& e : errors) CHECK_THROWS_AS(e.get(), std::invalid_argument);
  // Copies and moves share the one state.
  auto copy = results[7];
  auto moved = std::move(results[8]);
  CHECK(copy.get() == 7);
  CHECK(moved.get() == 8);
}
