// progress() on the map family's results and on IMapIterator, and
// wait_with_progress() off a terminal (tests/examples/progress_test.py runs
// the terminal path under a pseudo-terminal).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <procpool/detail/progress_bar.hpp>
#include <procpool/procpool.hpp>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using procpool::Progress;

namespace {

// Shared with the workers: mapped before main(), so before any pool forks.
struct Board {
  std::atomic<int> gate{0};  // gated items wait for it to open
};
Board* const board = [] {
  void* shared = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) std::abort();
  return new (shared) Board();
}();

// Declared after the pool: closes the gate, and opens it when the test case
// ends, so that a failed check does not leave the pool's join() waiting on
// gated tasks.
struct Gate {
  Gate() { board->gate.store(0); }
  ~Gate() { open(); }
  void open() { board->gate.store(1); }
};

void wait_gate() {
  while (board->gate.load() == 0) std::this_thread::sleep_for(1ms);
}
// Items from 4 on wait for the gate.
int gated(int x) {
  if (x >= 4) wait_gate();
  return x;
}
int gated_sum(int a, int b) {
  if (a >= 4) wait_gate();
  return a + b;
}
void gated_void(int x) { gated(x); }
int fail_on_three(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}

std::vector<int> iota(int n) {
  std::vector<int> xs(static_cast<std::size_t>(n));
  std::iota(xs.begin(), xs.end(), 0);
  return xs;
}

std::string numbers_text(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += std::to_string(i) + " ";
  return text;
}

}  // namespace

// On two workers with chunks of 2, items 0-3 finish and the chunks {4,5} and
// {6,7} block: exactly 4 items are done until the gate opens.
TEST_CASE("progress - map_async counts finished items, a chunk at a time, up to the total" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  auto result = pool.map_async(gated, iota(10), 2);
  CHECK(result.progress().total == 10);
  REQUIRE(test_support::eventually([&] { return result.progress() == Progress{4, 10}; }));
  std::this_thread::sleep_for(50ms);
  CHECK(result.progress() == Progress{4, 10});  // the gated chunks stay unfinished
  CHECK_FALSE(result.ready());
  gate.open();
  result.wait();
  CHECK(result.progress() == Progress{10, 10});
  CHECK(result.get() == iota(10));
}

TEST_CASE("progress - starmap_async and a void map count the same way" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  std::vector<std::pair<int, int>> pairs;
  for (int i = 0; i < 10; ++i) pairs.emplace_back(i, 100);
  auto sums = pool.starmap_async(gated_sum, pairs, 2);
  REQUIRE(test_support::eventually([&] { return sums.progress() == Progress{4, 10}; }));
  gate.open();
  sums.wait();
  CHECK(sums.progress() == Progress{10, 10});
  CHECK(sums.get()[9] == 109);

  auto none = pool.map_async(gated_void, iota(7), 3);
  none.wait();
  CHECK(none.progress() == Progress{7, 7});
}

TEST_CASE("progress - a single-pass input without a size: the total is known once map_async returns" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  std::istringstream in(numbers_text(10));
  auto result = pool.map_async(gated, std::views::istream<int>(in), 2);  // streamed, chunk by chunk
  REQUIRE(test_support::eventually([&] { return result.progress() == Progress{4, 10}; }));
  gate.open();
  CHECK(result.get() == iota(10));
  CHECK(result.progress() == Progress{10, 10});
}

TEST_CASE("progress - an empty input is {0, 0}, ready at once; any other result is {0, 1} then {1, 1}" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  auto empty = pool.map_async(gated, std::vector<int>{});
  CHECK(empty.ready());
  CHECK(empty.progress() == Progress{0, 0});
  std::istringstream in("");
  auto empty_stream = pool.map_async(gated, std::views::istream<int>(in), 2);
  CHECK(empty_stream.ready());
  CHECK(empty_stream.progress() == Progress{0, 0});

  auto one = pool.apply_async(gated, 5);
  CHECK(one.progress() == Progress{0, 1});
  gate.open();
  CHECK(one.get() == 5);
  CHECK(one.progress() == Progress{1, 1});

  procpool::AsyncResult<int> nothing;
  CHECK_THROWS_AS(static_cast<void>(nothing.progress()), procpool::ValueError);
}

TEST_CASE("progress - a failing item counts as done" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  auto result = pool.map_async(fail_on_three, iota(10), 3);
  result.wait();
  CHECK(result.progress() == Progress{10, 10});
  CHECK_THROWS_AS(result.get(), std::invalid_argument);
}

// Whoever waits reads the input: nothing is read until then, and the total
// is unknown (0) until the input has ended.
TEST_CASE("progress - imap: done as chunks arrive, the total once the input has ended" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  auto results = pool.imap(gated, iota(100), 1);
  CHECK(results.progress() == Progress{0, 0});
  // Items 0-3 finish; 4 and 5 block the workers; 6-9 wait behind them: the
  // look-ahead (6 chunks running or queued) is full, so the input stays unread.
  REQUIRE(test_support::eventually([&] {
    CHECK_FALSE(results.wait_all(10ms));
    return results.progress() == Progress{4, 0};
  }));
  gate.open();
  results.wait_all();  // reads the other 90 items as chunks finish
  CHECK(results.progress() == Progress{100, 100});
  int expected = 0;
  for (int v : results) CHECK(v == expected++);  // nothing was consumed
  CHECK(expected == 100);
}

TEST_CASE("progress - imap_unordered over a single-pass input, waited for to its end" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  Gate gate;
  std::istringstream in(numbers_text(6));
  auto results = pool.imap_unordered(gated, std::views::istream<int>(in), 1);
  // Once 0-3 are done, the look-ahead has room to find the input's end: the total is known.
  REQUIRE(test_support::eventually([&] {
    CHECK_FALSE(results.wait_all(10ms));
    return results.progress() == Progress{4, 6};
  }));
  gate.open();
  CHECK(results.wait_all(30s));
  CHECK(results.progress() == Progress{6, 6});
  std::set<int> seen;
  for (int v : results) seen.insert(v);
  CHECK(seen == std::set<int>{0, 1, 2, 3, 4, 5});
}

namespace {

// Whether `text` is one summary line of 10 items: "10/10 items in 1.23 s
// (812 items/s)", then `tail`, then a newline. (No std::regex: g++ 12 warns
// inside it under -fsanitize=address -O2.)
bool is_summary(const std::string& text, const std::string& tail = "") {
  const std::string head = "10/10 items in ";
  if (text.rfind(head, 0) != 0) return false;
  const auto skip = [&](std::size_t at, const char* chars) {
    while (at < text.size() && std::string(chars).find(text[at]) != std::string::npos) ++at;
    return at;
  };
  const std::size_t point = skip(head.size(), "0123456789");
  if (point == head.size() || point >= text.size() || text[point] != '.') return false;
  const std::size_t seconds_end = skip(point + 1, "0123456789");
  const std::string middle = " s (";
  if (seconds_end != point + 3 || text.compare(seconds_end, middle.size(), middle) != 0) return false;
  const std::size_t rate = seconds_end + middle.size();
  const std::size_t rate_end = skip(rate, "0123456789.");
  return rate_end > rate && text.substr(rate_end) == " items/s)" + tail + "\n";
}

}  // namespace

TEST_CASE("progress - wait_with_progress into a string stream prints one summary line" * doctest::timeout(60)) {
  procpool::Pool pool(2);

  std::ostringstream map_out;
  auto result = pool.map_async(fail_on_three, std::vector<int>{0, 1, 2, 4, 5, 6, 7, 8, 9, 10}, 2);
  CHECK(procpool::wait_with_progress(result, map_out) == Progress{10, 10});
  CHECK(result.ready());
  CHECK(is_summary(map_out.str()));

  std::ostringstream failed_out;
  auto failing = pool.map_async(fail_on_three, iota(10), 2);
  CHECK(procpool::wait_with_progress(failing, failed_out) == Progress{10, 10});  // does not throw
  CHECK(is_summary(failed_out.str(), "  failed: three is not allowed"));
  CHECK_THROWS_AS(failing.get(), std::invalid_argument);

  std::ostringstream imap_out;
  auto results = pool.imap(fail_on_three, std::vector<int>{0, 1, 2, 4, 5, 6, 7, 8, 9, 10}, 3);
  CHECK(procpool::wait_with_progress(results, imap_out) == Progress{10, 10});
  CHECK(is_summary(imap_out.str()));
  std::vector<int> got;
  for (int v : results) got.push_back(v);
  CHECK(got == std::vector<int>{0, 1, 2, 4, 5, 6, 7, 8, 9, 10});

  procpool::AsyncResult<std::vector<int>> nothing;
  std::ostringstream unused;
  CHECK_THROWS_AS(procpool::wait_with_progress(nothing, unused), procpool::ValueError);
  CHECK(unused.str().empty());
}

TEST_CASE("progress - the bar's text: fraction, percent, rate, ETA; the summary's" * doctest::timeout(10)) {
  using procpool::detail::progress_bar_line;
  CHECK(progress_bar_line({512, 1000}, 2.0, false) ==
        "[###############---------------]  512/1000  51%  256 items/s  ETA 0:02");
  CHECK(progress_bar_line({1, 10000}, 1.0, false) ==
        "[------------------------------]  1/10000  0%  1.0 items/s  ETA 2:46:39");
  CHECK(progress_bar_line({0, 10}, 0.5, false) == "[------------------------------]  0/10  0%  0.0 items/s  ETA ?");
  CHECK(progress_bar_line({40, 0}, 0.5, false) == "[??????????????????????????????]  40/?  80.0 items/s");
  CHECK(progress_bar_line({1000, 1000}, 4.0, true) ==
        "[##############################]  1000/1000  100%  250 items/s  in 4.00 s");
  CHECK(procpool::detail::progress_summary_line({1000, 1000}, 1.25) == "1000/1000 items in 1.25 s (800 items/s)");
}
