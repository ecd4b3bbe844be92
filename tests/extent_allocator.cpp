#include "engine/ipc/extent_allocator.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <random>
#include <utility>
#include <vector>

using procpool::detail::ExtentAllocator;

TEST_CASE("extent allocator - first fit reuses the lowest offsets") {
  ExtentAllocator a(1 << 20);
  const auto first = a.allocate(1000);
  REQUIRE(first);
  CHECK(*first == 0);
  a.release(*first, 1000);
  const auto again = a.allocate(5000);
  REQUIRE(again);
  CHECK(*again == 0);  // the same pages, not fresh ones
  CHECK(a.in_use() == ExtentAllocator::rounded(5000));
  CHECK(a.high_water() == ExtentAllocator::rounded(5000));
}

TEST_CASE("extent allocator - extends in place only into free bytes") {
  ExtentAllocator a(1 << 20);
  const auto x = a.allocate(100);
  REQUIRE(x);
  CHECK(a.extend(*x, 100, 10'000));
  const auto y = a.allocate(100);
  REQUIRE(y);
  CHECK(*y == ExtentAllocator::rounded(10'000));
  CHECK_FALSE(a.extend(*x, 10'000, 20'000));  // y is in the way
  CHECK(a.extend(*y, 100, (1 << 20) - *y));    // up to the end exactly
  CHECK_FALSE(a.allocate(1));
  CHECK(a.largest_free() == 0);
}

TEST_CASE("extent allocator - refuses what does not fit, whatever the size") {
  ExtentAllocator a(4096);
  CHECK_FALSE(a.allocate(4097));
  CHECK_FALSE(a.allocate(static_cast<std::size_t>(-1)));
  CHECK_FALSE(a.extend(0, 64, static_cast<std::size_t>(-1)));
  const auto all = a.allocate(4096);
  REQUIRE(all);
  CHECK_FALSE(a.allocate(0));
  a.release(*all, 4096);
  CHECK(a.largest_free() == 4096);
}

TEST_CASE("extent allocator - random allocations and releases coalesce back to one range") {
  constexpr std::size_t capacity = std::size_t{1} << 24;
  ExtentAllocator a(capacity);
  std::mt19937_64 rng(7);
  std::vector<std::pair<std::size_t, std::size_t>> live;
  for (int i = 0; i < 20'000; ++i) {
    if (!live.empty() && (rng() % 2 == 0 || live.size() > 200)) {
      const std::size_t k = rng() % live.size();
      a.release(live[k].first, live[k].second);
      live[k] = live.back();
      live.pop_back();
    } else {
      const std::size_t size = 1 + rng() % 100'000;
      if (const auto offset = a.allocate(size)) {
        // No two live ranges overlap.
        for (const auto& [o, s] : live) {
          const bool apart = *offset + ExtentAllocator::rounded(size) <= o || o + ExtentAllocator::rounded(s) <= *offset;
          REQUIRE(apart);
        }
        live.emplace_back(*offset, size);
      }
    }
  }
  for (const auto& [o, s] : live) a.release(o, s);
  CHECK(a.in_use() == 0);
  CHECK(a.largest_free() == capacity);
}
