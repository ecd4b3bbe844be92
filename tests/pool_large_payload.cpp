// Payloads far larger than a ring: the memfd side channel, both directions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <procpool/procpool.hpp>

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
