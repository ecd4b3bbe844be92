// progress() and wait_with_progress() on procpool::mpi::Pool under mpirun -n 3:
// the map family is TaskPool's, so it counts as on the local pool.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <procpool/mpi.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using procpool::Progress;

namespace {

// Items from 4 on wait until the file `path` exists: the ranks share no
// memory with rank 0, but they do share the file system.
struct GatedByFile {
  std::string path;
  int operator()(int x) const {
    if (x >= 4) {
      while (!std::filesystem::exists(path)) std::this_thread::sleep_for(2ms);
    }
    return x;
  }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(path);
  }
};

// Opens the gate (creates the file) when told to, and at the latest when the
// test case ends, so that a failed check does not leave the pool waiting.
struct FileGate {
  std::string path = std::filesystem::temp_directory_path() / ("procpool_progress_" + std::to_string(::getpid()));
  FileGate() { std::filesystem::remove(path); }
  ~FileGate() {
    open();
    std::this_thread::sleep_for(20ms);  // let the ranks see it before it goes
    std::filesystem::remove(path);
  }
  void open() const { std::ofstream(path) << "open\n"; }
};

template <class Condition>
bool eventually(Condition condition, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

std::vector<int> iota(int n) {
  std::vector<int> xs(static_cast<std::size_t>(n));
  std::iota(xs.begin(), xs.end(), 0);
  return xs;
}

}  // namespace

// Two worker ranks, chunks of 2: items 0-3 finish, the chunks {4,5} and {6,7} block.
TEST_CASE("mpi - progress of map_async and imap, and wait_with_progress's summary line" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  REQUIRE(pool.size() == 2);
  {
    FileGate gate;
    auto result = pool.map_async(GatedByFile{gate.path}, iota(10), 2);
    REQUIRE(eventually([&] { return result.progress() == Progress{4, 10}; }));
    CHECK_FALSE(result.ready());
    gate.open();
    std::ostringstream out;
    CHECK(procpool::wait_with_progress(result, out) == Progress{10, 10});
    CHECK(std::regex_match(out.str(), std::regex(R"(^10/10 items in [0-9.]+ s \([0-9.]+ items/s\)\n$)")));
    CHECK(result.get() == iota(10));
  }
  {
    FileGate gate;
    auto results = pool.imap(GatedByFile{gate.path}, iota(100), 1);
    CHECK(results.progress() == Progress{0, 0});
    // The look-ahead is full with 4-9: the input's end is not reached, the total unknown.
    REQUIRE(eventually([&] {
      CHECK_FALSE(results.wait_all(10ms));
      return results.progress() == Progress{4, 0};
    }));
    gate.open();
    results.wait_all();
    CHECK(results.progress() == Progress{100, 100});
    int expected = 0;
    for (int v : results) CHECK(v == expected++);
    CHECK(expected == 100);
  }
}
