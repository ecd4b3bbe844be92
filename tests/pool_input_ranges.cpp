// map, map_async, starmap, starmap_async over single-pass input ranges:
// istream iterators, std::views::istream, a move-only iterator with a
// sentinel, a generator-like range; an input that throws part-way.
#include <doctest/doctest.h>

#include <cstddef>
#include <iterator>
#include <memory>
#include <procpool/procpool.hpp>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int fail_on_3_and_7(int x) {
  if (x == 3 || x == 7) throw std::domain_error("bad item " + std::to_string(x));
  return x;
}
void nothing(int) {}

std::vector<int> squares_below(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * i);
  return v;
}

// What a Numbers range has done, kept apart so that a test can look at it
// after the range (and its iterators) are gone.
struct Reads {
  int produced = 0;   // items handed out
  int begins = 0;     // calls of begin(): a single-pass range allows one
  int throw_at = -1;  // item index whose read throws (-1: none)
};

// A generator-like single-pass range: 0, 1, ..., count - 1, made on demand.
// Its iterator is move-only and compares with a sentinel, as a coroutine
// generator's does; begin() is not const.
template <class Value = int>
class Numbers {
 public:
  class Iterator {
   public:
    using value_type = Value;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(Numbers* range) : range_(range) {}
    Iterator(Iterator&&) = default;
    Iterator& operator=(Iterator&&) = default;
    Value operator*() const { return range_->make(next_); }
    Iterator& operator++() {
      ++next_;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return next_ >= range_->count_; }

   private:
    Numbers* range_ = nullptr;
    int next_ = 0;
  };

  Numbers(int count, std::shared_ptr<Reads> reads) : count_(count), reads_(std::move(reads)) {}
  Iterator begin() {
    ++reads_->begins;
    return Iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

 private:
  Value make(int i) {
    if (i == reads_->throw_at) throw std::runtime_error("the input broke at " + std::to_string(i));
    ++reads_->produced;
    if constexpr (std::is_same_v<Value, int>) {
      return i;
    } else {
      return Value{i, 1000 * i};
    }
  }

  int count_;
  std::shared_ptr<Reads> reads_;
};

static_assert(std::ranges::input_range<Numbers<>> && !std::ranges::forward_range<Numbers<>>);
static_assert(!std::ranges::sized_range<Numbers<>>);

std::string numbers_text(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += std::to_string(i) + ' ';
  return text;
}

}  // namespace

TEST_CASE("input ranges - istream iterators, chunked automatically or in fixed chunks" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t chunksize : {0UL, 1UL, 7UL, 1000UL}) {
    INFO("chunksize " << chunksize);
    std::istringstream in(numbers_text(500));
    auto items = std::ranges::subrange(std::istream_iterator<int>(in), std::istream_iterator<int>());
    CHECK(pool.map(square, items, chunksize) == squares_below(500));
    CHECK(in.eof());
  }
}

TEST_CASE("input ranges - a sized single-pass range is read once, chunked from its size" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t chunksize : {0UL, 1UL, 33UL}) {
    INFO("chunksize " << chunksize);
    std::istringstream in(numbers_text(400));
    auto items = std::views::counted(std::istream_iterator<int>(in), 300);
    static_assert(std::ranges::sized_range<decltype(items)> && !std::ranges::forward_range<decltype(items)>);
    CHECK(pool.map(square, items, chunksize) == squares_below(300));
    int next = -1;
    in >> next;
    CHECK(next == 301);  // read once: istream_iterator had taken 300 when the count ran out
  }
}

TEST_CASE("input ranges - std::views::istream, an rvalue view" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::istringstream in(numbers_text(300));
  CHECK(pool.map(square, std::views::istream<int>(in)) == squares_below(300));
  std::istringstream again(numbers_text(300));
  auto view = std::views::istream<int>(again);
  CHECK(pool.map(square, view, 16) == squares_below(300));
  // A single-pass view adapted by another view stays single-pass.
  std::istringstream odd(numbers_text(20));
  auto odds = std::views::istream<int>(odd) | std::views::filter([](int x) { return x % 2 == 1; });
  CHECK(pool.map(square, odds, 3) == std::vector<int>{1, 9, 25, 49, 81, 121, 169, 225, 289, 361});
}

TEST_CASE("input ranges - a move-only iterator with a sentinel is read once, in order" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t chunksize : {0UL, 1UL, 5UL, 64UL, 100000UL}) {
    INFO("chunksize " << chunksize);
    auto reads = std::make_shared<Reads>();
    Numbers<> numbers(1000, reads);
    CHECK(pool.map(square, numbers, chunksize) == squares_below(1000));
    CHECK(reads->begins == 1);
    CHECK(reads->produced == 1000);
  }
  // Void callables and empty inputs.
  auto reads = std::make_shared<Reads>();
  Numbers<> some(10, reads);
  pool.map(nothing, some, 3);
  CHECK(reads->produced == 10);
  Numbers<> none(0, std::make_shared<Reads>());
  CHECK(pool.map(square, none).empty());
  Numbers<> none_streamed(0, std::make_shared<Reads>());
  auto empty = pool.map_async(square, none_streamed, 4);
  CHECK(empty.ready());
  CHECK(empty.get().empty());
  Numbers<> none_void(0, std::make_shared<Reads>());
  CHECK(pool.map_async(nothing, none_void, 4).ready());
}

TEST_CASE("input ranges - map_async and starmap over generator-like ranges" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  auto reads = std::make_shared<Reads>();
  Numbers<> numbers(2000, reads);
  auto result = pool.map_async(square, numbers, 100);
  CHECK(reads->produced == 2000);  // read and submitted before map_async returns
  CHECK(result.get() == squares_below(2000));

  std::vector<int> sums;
  for (int i = 0; i < 777; ++i) sums.push_back(1001 * i);
  for (std::size_t chunksize : {0UL, 10UL}) {
    Numbers<std::tuple<int, int>> tuples(777, std::make_shared<Reads>());
    CHECK(pool.starmap(add, tuples, chunksize) == sums);
    Numbers<std::pair<int, int>> pairs(777, std::make_shared<Reads>());
    CHECK(pool.starmap_async(add, pairs, chunksize).get() == sums);
  }
  // The same range types through a sized, multi-pass path still work.
  std::vector<std::tuple<int, int>> stored{{1, 2}, {3, 4}};
  CHECK(pool.starmap(add, stored) == std::vector<int>{3, 7});
}

TEST_CASE("input ranges - item errors come out by position; the rest still run" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t chunksize : {0UL, 1UL, 2UL, 4UL}) {
    INFO("chunksize " << chunksize);
    Numbers<> numbers(10, std::make_shared<Reads>());
    auto result = pool.map_async(fail_on_3_and_7, numbers, chunksize);
    CHECK_THROWS_WITH_AS(result.get(), "bad item 3", std::domain_error);
    Numbers<> again(10, std::make_shared<Reads>());
    CHECK_THROWS_WITH_AS(pool.map(fail_on_3_and_7, again, chunksize), "bad item 3", std::domain_error);
  }
}

TEST_CASE("input ranges - an input that throws part-way: the call throws it, the pool goes on" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t chunksize : {0UL, 1UL, 3UL, 1000UL}) {
    INFO("chunksize " << chunksize);
    auto reads = std::make_shared<Reads>();
    reads->throw_at = 50;
    Numbers<> numbers(100, reads);
    CHECK_THROWS_WITH_AS(pool.map(square, numbers, chunksize), "the input broke at 50", std::runtime_error);
    CHECK(reads->produced == 50);  // nothing read past the error
    auto again = std::make_shared<Reads>();
    again->throw_at = 0;
    Numbers<> at_once(100, again);
    CHECK_THROWS_WITH_AS((void)pool.map_async(square, at_once, chunksize), "the input broke at 0", std::runtime_error);
    Numbers<std::tuple<int, int>> tuples(10, std::make_shared<Reads>());
    CHECK(pool.starmap(add, tuples, chunksize).size() == 10);  // still usable
  }
}

TEST_CASE("input ranges - a closed pool refuses a single-pass input before reading it" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  pool.close();
  for (std::size_t chunksize : {0UL, 4UL}) {
    auto reads = std::make_shared<Reads>();
    Numbers<> numbers(10, reads);
    CHECK_THROWS_AS((void)pool.map_async(square, numbers, chunksize), procpool::ValueError);
    CHECK(reads->produced == 0);
  }
  pool.join();
}
