// procpool::mpi::Pool under mpirun -n 3: the composition surface (then()
// chains, when_all/when_any/as_completed, co_await, AsyncResult arguments)
// works as on the local pool: it is the same TaskPool surface.
#include <doctest/doctest.h>

#include <chrono>
#include <procpool/mpi.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int inc(int x) { return x + 1; }
int sleep_then(int ms, int value) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}
int fail_with(int code) { throw std::invalid_argument("bad code " + std::to_string(code)); }

procpool::AsyncResult<int> pipeline(procpool::mpi::Pool& pool, int x) {
  const int a = co_await pool.apply_async(square, x);
  co_return co_await pool.apply_async(add, a, 1);
}

}  // namespace

TEST_CASE("mpi compose - then() chains, errors flow, flattening" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  auto text = pool.apply_async(square, 7).then([](int v) { return std::to_string(v + 1); });
  CHECK(text.get() == "50");
  auto failed = pool.apply_async(fail_with, 2).then([](int v) { return v; });
  CHECK_THROWS_WITH_AS(failed.get(), doctest::Contains("bad code 2"), std::invalid_argument);
  auto flat = pool.apply_async(square, 3).then([&pool](int v) { return pool.apply_async(add, v, 1); });
  CHECK(flat.get() == 10);
}

TEST_CASE("mpi compose - when_all, when_any, as_completed" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::vector<procpool::AsyncResult<int>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(pool.apply_async(square, i));
  const std::vector<int> all = procpool::when_all(rs).get();
  for (int i = 0; i < 10; ++i) CHECK(all[static_cast<std::size_t>(i)] == i * i);
  auto pair = procpool::when_all(pool.apply_async(square, 2), pool.apply_async(inc, 2)).get();
  CHECK(std::get<0>(pair) == 4);
  CHECK(std::get<1>(pair) == 3);
  std::vector<procpool::AsyncResult<int>> race{pool.apply_async(sleep_then, 2000, 0), pool.apply_async(sleep_then, 10, 1)};
  CHECK(procpool::when_any(race).get() == 1);
  int seen = 0;
  for (auto& r : procpool::as_completed(rs)) seen += r.ready() ? 1 : 0;
  CHECK(seen == 10);
  (void)race[0].get();
}

TEST_CASE("mpi compose - co_await in a coroutine" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::vector<procpool::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pipeline(pool, i));
  for (int i = 0; i < 20; ++i) CHECK(rs[static_cast<std::size_t>(i)].get() == i * i + 1);
}

TEST_CASE("mpi compose - AsyncResult arguments: a diamond, a chain, a failed argument" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  auto a = pool.apply_async(sleep_then, 50, 2);
  auto b = pool.apply_async(square, a);
  auto c = pool.apply_async(inc, a);
  CHECK(pool.apply_async(add, b, c).get() == 7);
  procpool::AsyncResult<int> link = pool.apply_async(inc, 0);
  for (int i = 1; i < 10000; ++i) link = pool.apply_async(inc, link);
  CHECK(link.get() == 10000);
  auto bad = pool.apply_async(fail_with, 4);
  CHECK_THROWS_WITH_AS(pool.apply_async(inc, bad).get(), doctest::Contains("bad code 4"), std::invalid_argument);
}

TEST_CASE("mpi compose - close() and join() wait for tasks waiting for their arguments" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  procpool::AsyncResult<int> tail = pool.apply_async(sleep_then, 300, 0);
  for (int i = 0; i < 10; ++i) tail = pool.apply_async(inc, tail);
  pool.close();
  pool.join();
  CHECK(tail.ready());
  CHECK(tail.get() == 10);
}
