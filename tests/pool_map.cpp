// map, map_async, starmap, starmap_async, imap, imap_unordered; maxtasksperchild.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <list>
#include <procpool/procpool.hpp>
#include <ranges>
#include <set>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
std::string shout(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::toupper);
  return s;
}
int fail_on_3_and_7(int x) {
  if (x == 3 || x == 7) throw std::domain_error("bad item " + std::to_string(x));
  return x;
}
int sleep_then_return(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
pid_t worker_pid(int) { return ::getpid(); }

// Appends one line per call to a file named by the item: proves an item ran.
void record(std::pair<std::string, int> where) {
  const int fd = ::open(where.first.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  const std::string line = std::to_string(where.second) + "\n";
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (where.second == 5) throw std::runtime_error("item 5 fails");
}

int initialized = 0;
void initialize() { initialized = 77; }
int read_initialized(int) { return initialized; }

std::vector<int> range_to(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

}  // namespace

TEST_CASE("map - results come back in input order for any chunk size" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  const auto xs = range_to(1000);
  std::vector<int> expected;
  for (int x : xs) expected.push_back(x * x);
  CHECK(pool.map(square, xs) == expected);  // automatic chunk size
  for (std::size_t chunksize : {1UL, 7UL, 999UL, 5000UL}) CHECK(pool.map(square, xs, chunksize) == expected);
  const std::list<std::string> words{"a", "bc", "def"};
  CHECK(pool.map(shout, words) == std::vector<std::string>{"A", "BC", "DEF"});
  const std::vector<const char*> c_strings{"x", "yz"};
  CHECK(pool.map(shout, c_strings) == std::vector<std::string>{"X", "YZ"});
  CHECK(pool.map([](int x) { return x + 1; }, std::vector<int>{1, 2}) == std::vector<int>{2, 3});
}

TEST_CASE("map - empty input, void callables and map_async" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  CHECK(pool.map(square, std::vector<int>{}).empty());
  auto empty = pool.map_async(square, std::vector<int>{});
  CHECK(empty.ready());
  CHECK(empty.get().empty());

  auto async = pool.map_async(square, range_to(100), 10);
  const std::vector<int> values = async.get();
  CHECK(values.size() == 100);
  CHECK(values[99] == 9801);

  const std::string file = "/tmp/procpool-map-void-" + std::to_string(::getpid());
  std::vector<std::pair<std::string, int>> items;
  for (int i = 0; i < 4; ++i) items.emplace_back(file, i == 1 ? 1 : 10 + i);
  pool.map(record, items);  // returns void
  procpool::AsyncResult<void> v = pool.map_async(record, items);
  v.get();
  ::unlink(file.c_str());
}

TEST_CASE("map - an item that throws does not stop the others; the first error by position is thrown" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  CHECK_THROWS_WITH_AS(pool.map(fail_on_3_and_7, range_to(20), 2), "bad item 3", std::domain_error);
  auto async = pool.map_async(fail_on_3_and_7, range_to(20), 1);
  async.wait();
  CHECK_FALSE(async.successful());

  const std::string file = "/tmp/procpool-map-others-" + std::to_string(::getpid());
  std::vector<std::pair<std::string, int>> items;
  for (int i = 0; i < 12; ++i) items.emplace_back(file, i);
  CHECK_THROWS_WITH_AS(pool.map(record, items, 4), "item 5 fails", std::runtime_error);
  std::ifstream in(file);
  std::set<int> ran;
  for (int x; in >> x;) ran.insert(x);
  ::unlink(file.c_str());
  CHECK(ran.size() == 12);  // all ran, including the ones after 5 in its chunk
  CHECK(pool.apply(square, 4) == 16);  // still usable
  pool.close();
  pool.join();  // and closes without deadlock after the error
}

TEST_CASE("starmap - tuples are unpacked into arguments" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  CHECK(pool.starmap(add, pairs) == std::vector<int>{3, 7, 11});
  CHECK(pool.starmap_async(add, pairs, 1).get() == std::vector<int>{3, 7, 11});
  const std::vector<std::pair<int, int>> std_pairs{{10, 1}};
  CHECK(pool.starmap(add, std_pairs) == std::vector<int>{11});
  CHECK_THROWS_AS(pool.starmap([](int a, int) -> int { throw std::out_of_range(std::to_string(a)); }, pairs),
                  std::out_of_range);
}

TEST_CASE("imap - results in input order, as an input range and with next()" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::vector<int> seen;
  for (int v : pool.imap(square, range_to(50), 3)) seen.push_back(v);
  CHECK(seen.size() == 50);
  bool ordered = true;
  for (int i = 0; i < 50; ++i) ordered = ordered && seen[static_cast<std::size_t>(i)] == i * i;
  CHECK(ordered);

  auto it = pool.imap(square, std::vector<int>{2, 3});
  CHECK(it.next() == 4);
  CHECK(it.next(10s) == 9);
  CHECK(it.next() == std::nullopt);
  CHECK(it.next() == std::nullopt);
  static_assert(std::ranges::input_range<procpool::IMapIterator<int>>);
}

TEST_CASE("imap_unordered - every result arrives, in completion order" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::multiset<int> got;
  // The slow first item finishes last.
  const std::vector<int> delays{300, 1, 1, 1, 1, 1};
  std::vector<int> order;
  for (int v : pool.imap_unordered(sleep_then_return, delays)) order.push_back(v);
  CHECK(std::multiset<int>(order.begin(), order.end()) == std::multiset<int>(delays.begin(), delays.end()));
  CHECK(order.back() == 300);
}

TEST_CASE("imap - an endless input is read lazily, with bounded look-ahead" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::atomic<long> pulled{0};
  auto naturals = std::views::iota(0) | std::views::transform([&pulled](int x) {
                    ++pulled;
                    return x;
                  });
  long consumed = 0;
  for (int v : pool.imap(square, naturals, 4)) {
    CHECK(v == static_cast<int>(consumed * consumed));
    if (++consumed == 2000) break;
  }
  // 2 workers: at most 2*2+2 chunks of 4 ahead of the consumer.
  CHECK(pulled.load() <= consumed + 6 * 4);
  std::this_thread::sleep_for(50ms);
  CHECK(pulled.load() <= consumed + 6 * 4);  // and nothing more is read while nobody asks
}

TEST_CASE("imap - once its iterator is gone, close() reads no more of its input" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::atomic<long> pulled{0};
  // Long: reading it all would run thousands more tasks (an endless one, forever).
  // Item 0 is quick; the few after it (its look-ahead) take 100 ms each.
  auto delays = std::views::iota(0, 5000) | std::views::transform([&pulled](int x) {
                  ++pulled;
                  return x >= 1 && x <= 6 ? 100 : 0;
                });
  {
    auto dropped = pool.imap(sleep_then_return, delays);
    CHECK(dropped.next() == 0);
  }  // its look-ahead still running: those chunks keep the imap's state alive
  const long read = pulled.load();
  pool.close();
  pool.join();
  CHECK(pulled.load() == read);
}

TEST_CASE("imap - a task's error or the input's error surfaces at its position; the pool goes on" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (bool ordered : {true, false}) {
    auto run = [&](auto&& it) {
      std::vector<int> values;
      int errors = 0;
      for (;;) {
        try {
          auto v = it.next();
          if (!v) break;
          values.push_back(*v);
        } catch (const std::domain_error& e) {
          ++errors;
          if (ordered) CHECK(values.size() == (errors == 1 ? 3u : 6u));  // at items 3 and 7
        }
      }
      CHECK(errors == 2);
      CHECK(values.size() == 8);
    };
    if (ordered) {
      run(pool.imap(fail_on_3_and_7, range_to(10)));
    } else {
      run(pool.imap_unordered(fail_on_3_and_7, range_to(10)));
    }
  }
  // The input range itself throws at its fifth item: four values, then that error, then the end.
  auto throwing = std::views::iota(0, 100) | std::views::transform([](int x) {
                    if (x == 4) throw std::length_error("input broke at 4");
                    return x;
                  });
  auto it = pool.imap(square, throwing, 2);
  for (int i = 0; i < 4; ++i) CHECK(it.next() == i * i);
  CHECK_THROWS_WITH_AS(it.next(), "input broke at 4", std::length_error);
  CHECK(it.next() == std::nullopt);
  CHECK(pool.apply(square, 5) == 25);
}

TEST_CASE("imap - next(timeout), misuse, and iterating after close and join" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  auto slow = pool.imap(sleep_then_return, std::vector<int>{400});
  CHECK_THROWS_AS(slow.next(20ms), procpool::TimeoutError);
  CHECK(slow.next() == 400);
  CHECK_THROWS_AS((void)pool.imap(square, range_to(3), 0), procpool::ValueError);

  auto later = pool.imap(square, range_to(40), 1);  // far more than the look-ahead
  pool.close();
  CHECK_THROWS_AS((void)pool.imap(square, range_to(3)), procpool::ValueError);
  CHECK_THROWS_AS((void)pool.map(square, range_to(3)), procpool::ValueError);
  pool.join();
  int count = 0;
  for (int v : later) {
    CHECK(v == count * count);
    ++count;
  }
  CHECK(count == 40);
}

TEST_CASE("maxtasksperchild - workers are replaced without losing or repeating a task" * doctest::timeout(120)) {
  for (bool close_early : {false, true}) {
    procpool::PoolOptions options;
    options.processes = 2;
    options.maxtasksperchild = 3;
    options.initializer = initialize;
    procpool::Pool pool(options);
    std::vector<procpool::AsyncResult<pid_t>> pids;
    std::vector<procpool::AsyncResult<int>> inits;
    for (int i = 0; i < 30; ++i) pids.push_back(pool.apply_async(worker_pid, i));
    for (int i = 0; i < 12; ++i) inits.push_back(pool.apply_async(read_initialized, i));
    if (close_early) {
      pool.close();
      pool.join();
    }
    std::map<pid_t, int> tasks_per_pid;
    for (auto& p : pids) ++tasks_per_pid[p.get()];
    for (auto& r : inits) CHECK(r.get() == 77);  // the initializer ran in every replacement
    CHECK(tasks_per_pid.size() >= 10);            // 30 tasks at 3 per worker
    for (const auto& [pid, n] : tasks_per_pid) CHECK(n <= 3);
    if (!close_early) CHECK(pool.size() == 2);
  }
}
