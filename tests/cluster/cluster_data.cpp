// Data across hosts (tests/cluster: one rank per simulated host, TCP only):
// 64 MiB arguments and results both ways, and a 64 MiB Shared value, every
// byte checked on the far side and back here.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <procpool/mpi.hpp>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

namespace {

constexpr std::size_t big = std::size_t{64} << 20;

std::string this_host() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// A byte that depends on its position and a seed: a piece sent twice, dropped
// or put in the wrong place shows.
unsigned char pattern(std::size_t i, unsigned seed) {
  return static_cast<unsigned char>(((i >> 12) * 2654435761u + i * 40503u + seed) >> 7);
}

std::vector<unsigned char> make(unsigned seed) {
  std::vector<unsigned char> v(big);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = pattern(i, seed);
  return v;
}

// Where the first wrong byte is, or -1.
long long first_wrong(const std::vector<unsigned char>& v, unsigned seed) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != pattern(i, seed)) return static_cast<long long>(i);
  }
  return -1;
}

// On a worker: checks the argument, answers with another 64 MiB and its host.
// The sleep keeps it busy, so that two at once go to both other hosts.
std::tuple<long long, std::vector<unsigned char>, std::string> echo_back(std::vector<unsigned char> in, unsigned seed) {
  const long long wrong = in.size() == big ? first_wrong(in, seed) : -2;
  in = {};
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return {wrong, make(seed + 1), this_host()};
}

// (first wrong byte or -1, host, decodes of the shared value on this rank so far)
int decodes = 0;
struct Counted {
  std::vector<unsigned char> bytes;
  template <class Archive>
  void save(Archive& ar) const {
    ar(bytes);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(bytes);
    ++decodes;
  }
};

std::tuple<long long, std::string, int> check_shared(procpool::Shared<Counted> shared, unsigned seed) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto& bytes = shared->bytes;
  return {bytes.size() == big ? first_wrong(bytes, seed) : -2, this_host(), decodes};
}

}  // namespace

TEST_CASE("cluster - every worker rank runs on a host of its own" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  REQUIRE(pool.size() == 2);
  const auto slow_host = [](int) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return this_host();
  };
  auto a = pool.apply_async(slow_host, 0);
  auto b = pool.apply_async(slow_host, 1);
  const std::set<std::string> hosts{a.get(), b.get(), this_host()};
  CHECK(hosts.size() == 3);
}

TEST_CASE("cluster - 64 MiB both ways, to and from two other hosts at once" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  std::vector<procpool::AsyncResult<std::tuple<long long, std::vector<unsigned char>, std::string>>> results;
  for (unsigned seed : {11u, 22u}) results.push_back(pool.apply_async(echo_back, make(seed), seed));
  std::set<std::string> hosts;
  unsigned seed = 11;
  for (auto& r : results) {
    auto [wrong, back, host] = r.get();
    CAPTURE(host);
    CHECK(wrong == -1);  // the worker saw every byte right
    REQUIRE(back.size() == big);
    CHECK(first_wrong(back, seed + 1) == -1);
    hosts.insert(host);
    seed += 11;
  }
  CHECK(hosts.size() == 2);
  CHECK(hosts.count(this_host()) == 0);
}

TEST_CASE("cluster - a 64 MiB Shared value reaches every other host once, intact" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const auto shared = pool.share(Counted{make(33)});
  std::vector<procpool::AsyncResult<std::tuple<long long, std::string, int>>> results;
  for (int i = 0; i < 8; ++i) results.push_back(pool.apply_async(check_shared, shared, 33u));
  std::map<std::string, int> decoded;  // by host: the most decodes seen there
  for (auto& r : results) {
    const auto [wrong, host, seen] = r.get();
    CAPTURE(host);
    CHECK(wrong == -1);
    decoded[host] = std::max(decoded[host], seen);
  }
  CHECK(decodes == 0);  // rank 0 never decoded it
  CHECK(decoded.count(this_host()) == 0);
  CHECK(decoded.size() == 2);  // 8 tasks of 100 ms on 2 ranks: both had some
  for (const auto& [host, n] : decoded) {
    CAPTURE(host);
    CHECK(n == 1);
  }
}
