// Payloads far larger than a ring: the memfd side channel, both directions.
#include <doctest/doctest.h>

#include <cstdint>
#include <procpool/procpool.hpp>

namespace {

std::uint64_t checksum(const std::vector<char>& bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}

std::vector<char> echo(std::vector<char> bytes) { return bytes; }
std::uint64_t checksum_in_worker(const std::vector<char>& bytes) { return checksum(bytes); }
std::vector<char> make_bytes(std::size_t size, int seed) {
  std::vector<char> bytes(size);
  std::uint32_t x = static_cast<std::uint32_t>(seed) * 2654435761u + 1;
  for (auto& b : bytes) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<char>(x);
  }
  return bytes;
}

}  // namespace

TEST_CASE("large payload - 256 MiB goes to a worker and back intact" * doctest::timeout(120)) {
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
