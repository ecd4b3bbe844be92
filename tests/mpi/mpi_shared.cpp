// Shared data on procpool::mpi::Pool under mpirun -n 3: a Shared<T> goes once
// to each rank and is decoded there once; a rank drops it once rank 0 has
// released it; a SharedArray (local-only) fails its task.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <procpool/mpi.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

#include "rank_id.hpp"

using namespace std::chrono_literals;

namespace {

// A vector whose decodes this process counts: a rank must decode a shared one once.
std::atomic<int> counted_decodes{0};
struct Counted {
  std::vector<int> values;
  template <class Archive>
  void save(Archive& ar) const {
    ar(values);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(values);
    counted_decodes.fetch_add(1);
  }
};

// (the element, this rank's decodes so far, this rank's rank_id())
std::tuple<int, int, int> counted_at(procpool::Shared<Counted> shared, int i) {
  return {shared->values.at(static_cast<std::size_t>(i)), counted_decodes.load(), rank_id()};
}

std::size_t hash_of(procpool::Shared<std::string> shared) { return std::hash<std::string>{}(*shared); }

long sum_plus(procpool::Shared<std::vector<int>> shared, int extra) {
  return std::accumulate(shared->begin(), shared->end(), 0L) + extra;
}

int pid_after(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return rank_id();
}

// The shared values this process maps (each is one memfd mapping).
int shared_mappings() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) n += line.find("memfd:procpool-shared") != std::string::npos;
  return n;
}

// (rank_id(), shared values mapped) of the rank that runs it, with the value in use.
std::pair<int, int> mappings_with(procpool::Shared<std::vector<int>> shared, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  (void)shared->size();
  return {rank_id(), shared_mappings()};
}

std::pair<int, int> mappings_after(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return {rank_id(), shared_mappings()};
}

long sum_array(procpool::SharedArray<int> array) { return std::accumulate(array.begin(), array.end(), 0L); }

}  // namespace

TEST_CASE("mpi - a Shared value of a few MiB: right answers, decoded once per rank" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  Counted table;
  table.values.resize(std::size_t{1} << 20);  // 4 MiB
  std::iota(table.values.begin(), table.values.end(), 0);
  const auto shared = pool.share(table);
  std::vector<procpool::AsyncResult<std::tuple<int, int, int>>> results;
  for (int i = 0; i < 200; ++i) results.push_back(pool.apply_async(counted_at, shared, i * 5003));
  std::vector<std::pair<procpool::Shared<Counted>, int>> items;
  for (int i = 0; i < 200; ++i) items.emplace_back(shared, i * 7);
  const auto mapped = pool.starmap(counted_at, items, 10);
  std::map<int, int> decodes;  // by rank_id(): the most seen
  const auto note = [&](const std::tuple<int, int, int>& r, int expected) {
    const auto [value, seen, pid] = r;
    CHECK(value == expected);
    decodes[pid] = std::max(decodes[pid], seen);
  };
  for (int i = 0; i < 200; ++i) {
    note(results[static_cast<std::size_t>(i)].get(), i * 5003);
    note(mapped[static_cast<std::size_t>(i)], i * 7);
  }
  CHECK(counted_decodes.load() == 0);  // rank 0 never decoded it
  REQUIRE(!decodes.empty());
  for (const auto& [pid, n] : decodes) {
    CAPTURE(pid);
    CHECK(n == 1);
  }
}

TEST_CASE("mpi - a 64 MiB Shared value, sent in pieces" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  std::string big(std::size_t{64} << 20, '\0');
  for (std::size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i * 31);
  const std::size_t expected = std::hash<std::string>{}(big);
  const auto shared = pool.share(big);
  big = std::string();
  std::vector<procpool::AsyncResult<std::size_t>> results;
  for (int i = 0; i < 6; ++i) results.push_back(pool.apply_async(hash_of, shared));
  for (auto& r : results) CHECK(r.get() == expected);
}

TEST_CASE("mpi - dropping the handle while its tasks are queued" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  // Both ranks busy, so the tasks below wait in the backlog.
  auto a = pool.apply_async(pid_after, 200);
  auto b = pool.apply_async(pid_after, 200);
  auto shared = pool.share(std::vector<int>(1000, 3));
  std::vector<procpool::AsyncResult<long>> results;
  for (int i = 0; i < 100; ++i) results.push_back(pool.apply_async(sum_plus, shared, i));
  shared = {};
  for (int i = 0; i < 100; ++i) CHECK(results[static_cast<std::size_t>(i)].get() == 3000 + i);
  CHECK(a.get() != b.get());
}

TEST_CASE("mpi - a rank drops a value once its handles and tasks are gone" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  {
    const auto shared = pool.share(std::vector<int>(1 << 16, 1));
    // Two at once: one per rank (the least loaded gets each task).
    auto a = pool.apply_async(mappings_with, shared, 200);
    auto b = pool.apply_async(mappings_with, shared, 200);
    const auto ra = a.get();
    const auto rb = b.get();
    CHECK(ra.first != rb.first);
    CHECK(ra.second >= 1);
    CHECK(rb.second >= 1);
  }
  // The forget follows the release on the manager thread: look until both ranks have none left.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::map<int, int> left;
  for (;;) {
    auto a = pool.apply_async(mappings_after, 100);
    auto b = pool.apply_async(mappings_after, 100);
    const auto ra = a.get();
    const auto rb = b.get();
    left[ra.first] = ra.second;
    left[rb.first] = rb.second;
    if ((ra.second == 0 && rb.second == 0) || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(50ms);
  }
  for (const auto& [pid, n] : left) {
    CAPTURE(pid);
    CHECK(n == 0);
  }
}

TEST_CASE("mpi - a SharedArray is local-only: its task fails with SerializationError" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  procpool::SharedArray<int> array(4);
  CHECK_THROWS_WITH_AS(pool.apply(sum_array, array), doctest::Contains("SharedArray works only with local pools"),
                       procpool::SerializationError);
  CHECK_THROWS_WITH_AS(pool.apply(sum_array, procpool::SharedArray<int>()),
                       doctest::Contains("SharedArray works only with local pools"), procpool::SerializationError);
  CHECK(pool.apply(pid_after, 0) != rank_id());
}
