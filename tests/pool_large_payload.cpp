// Payloads far larger than a ring: the memfd side channel, both directions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <procpool/procpool.hpp>
#include <csignal>

#include "support.hpp"

namespace {

// Eight bytes a step: sanitizer builds instrument every access, and 256 MiB is a lot of them.
std::uint64_t checksum(const std::vector<char>& bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * 1099511628211ULL;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * 1099511628211ULL;
  return h;
}

std::vector<char> echo(std::vector<char> bytes) { return bytes; }
std::uint64_t checksum_in_worker(const std::vector<char>& bytes) { return checksum(bytes); }
std::vector<char> make_bytes(std::size_t size, int seed) {
  std::vector<char> bytes(size);
  std::uint64_t x = static_cast<std::uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + 1;
  for (std::size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(bytes.data() + i, &x, std::min<std::size_t>(8, size - i));
  }
  return bytes;
}

}  // namespace

TEST_CASE("large payload - 256 MiB goes to a worker and back intact" * doctest::timeout(280)) {
  procpool::Pool pool(2);
  const std::size_t size = std::size_t{256} << 20;
  const std::vector<char> bytes = make_bytes(size, 1);
  const std::uint64_t expected = checksum(bytes);
  CHECK(pool.apply(checksum_in_worker, bytes) == expected);
  const std::vector<char> back = pool.apply(echo, bytes);
  CHECK(back.size() == size);
  CHECK(checksum(back) == expected);
  // Made in the worker: only the result is large.
  const std::vector<char> made = pool.apply(make_bytes, size, 1);
  CHECK(checksum(made) == expected);
}

TEST_CASE("large payload - many medium payloads in flight at once" * doctest::timeout(120)) {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<std::vector<char>>> results;
  for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(make_bytes, std::size_t{1} << 20, i));
  for (int i = 0; i < 40; ++i) {
    CHECK(checksum(results[static_cast<std::size_t>(i)].get()) == checksum(make_bytes(std::size_t{1} << 20, i)));
  }
}

TEST_CASE("large payload - the payload arenas are reused, and gone with the pool" * doctest::timeout(120)) {
  const auto maps = test_support::shared_mapping_count();
  const auto fds = test_support::open_fd_count();
  {
    procpool::Pool pool(2);
    const std::vector<char> bytes = make_bytes(std::size_t{3} << 20, 7);
    for (int i = 0; i < 50; ++i) CHECK(pool.apply(echo, bytes) == bytes);
    // The rings and the arenas, reused: no mapping per payload.
    CHECK(test_support::shared_mapping_count() <= maps + 2);
  }
  CHECK(test_support::shared_mapping_count() == maps);
  CHECK(test_support::open_fd_count() == fds);
}

TEST_CASE("large payload - a worker killed while it holds a large payload loses only its task" *
          doctest::timeout(120)) {
  procpool::Pool pool(1);
  const std::vector<char> bytes = make_bytes(std::size_t{2} << 20, 3);
  auto doomed = pool.apply_async(
      [](const std::vector<char>& b) {
        ::raise(SIGKILL);
        return b.size();
      },
      bytes);
  auto after = pool.apply_async(echo, bytes);
  CHECK_THROWS_AS(doomed.get(), procpool::WorkerLost);
  CHECK(after.get() == bytes);
  for (int i = 0; i < 20; ++i) CHECK(pool.apply(checksum_in_worker, bytes) == checksum(bytes));
}

namespace {

// Writes 2 MiB (into the arena), then fails: the half-written payload must be given back.
struct FailsHalfway {
  template <class Archive>
  void save(Archive& archive) const {
    archive(std::vector<char>(std::size_t{2} << 20, 'h'));
    throw std::runtime_error("cannot finish");
  }
  template <class Archive>
  void load(Archive&) {}
};

std::size_t take(const FailsHalfway&) { return 0; }

}  // namespace

TEST_CASE("large payload - an argument that fails halfway through a large payload fails only its task" *
          doctest::timeout(120)) {
  procpool::Pool pool(1);
  const std::vector<char> bytes = make_bytes(std::size_t{3} << 20, 5);
  for (int i = 0; i < 50; ++i) {
    auto failed = pool.apply_async(take, FailsHalfway{});
    CHECK_THROWS_WITH_AS(failed.get(), doctest::Contains("cannot finish"), procpool::SerializationError);
  }
  CHECK(pool.apply(echo, bytes) == bytes);
}
