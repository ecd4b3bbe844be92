// Shared<T> and SharedArray<T>: data in shared memory, passed to tasks by handle.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <procpool/procpool.hpp>

#include "support.hpp"

namespace {

using procpool::Shared;
using procpool::SharedArray;

// Counts its decodings in this process: a worker reports its count.
int decodes = 0;
struct Counted {
  std::vector<int> values;
  template <class Archive>
  void save(Archive& archive) const {
    archive(values);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(values);
    ++decodes;
  }
};

std::pair<int, int> sum_and_decodes(Shared<Counted> shared, int i) {
  return {shared->values[static_cast<std::size_t>(i) % shared->values.size()], decodes};
}

long sum_shared(Shared<std::vector<int>> shared) {
  return std::accumulate(shared->begin(), shared->end(), 0L);
}

long sum_array(SharedArray<int> array) { return std::accumulate(array.begin(), array.end(), 0L); }

void fill_slice(SharedArray<int> slice, int value) { std::fill(slice.begin(), slice.end(), value); }

int set_or_die(SharedArray<int> array, int i) {
  array[static_cast<std::size_t>(i)] = i + 1;
  if (i == 1) ::raise(SIGKILL);
  return ::getpid();
}

double sleep_then(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

long sum_both(Shared<std::vector<int>> shared, SharedArray<int> array) {
  return sum_shared(std::move(shared)) + sum_array(std::move(array));
}

// A handle written by hand, to see what a worker does with garbage: it
// attaches a real array (so its id is known to the worker), then writes
// the fields given.
struct ForgedArray {
  SharedArray<int> real;
  std::uint64_t id = 0;  // 0: the real array's id
  std::uint64_t offset = 0;
  std::uint64_t count = 0;
  std::uint64_t element = sizeof(int);
  template <class Archive>
  void save(Archive& archive) const {
    procpool::detail::OutputBuffer scratch;
    scratch.reset(nullptr, 0, std::size_t{1} << 20);
    procpool::detail::WireOutputArchive inner(scratch);
    inner(real);  // attaches the real array to the task
    std::uint64_t real_id = 0;
    std::memcpy(&real_id, scratch.data(), sizeof real_id);
    archive(id == 0 ? real_id : id, offset, count, element);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(real);
  }
};
std::size_t forged_size(ForgedArray forged) { return forged.real.size(); }

// The id of an array read as a Shared value of another kind or type.
template <class T>
struct ForgedValue {
  SharedArray<int> array;
  Shared<std::vector<int>> value;
  bool use_array = false;
  Shared<T> read;
  template <class Archive>
  void save(Archive& archive) const {
    procpool::detail::OutputBuffer scratch;
    scratch.reset(nullptr, 0, std::size_t{1} << 20);
    procpool::detail::WireOutputArchive inner(scratch);
    if (use_array) {
      inner(array);
    } else {
      inner(value);
    }
    std::uint64_t real_id = 0;
    std::memcpy(&real_id, scratch.data(), sizeof real_id);
    archive(real_id);
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(read);
  }
};
template <class T>
bool forged_value(ForgedValue<T> forged) {
  return forged.read.get() == T{};
}

bool maps_name_shared(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("procpool-shared") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("shared - SharedArray members" * doctest::timeout(30)) {
  const SharedArray<double> empty;
  CHECK(empty.size() == 0);
  CHECK(empty.empty());
  CHECK(empty.data() == nullptr);
  CHECK(empty.span().empty());
  CHECK(SharedArray<double>(0).empty());

  SharedArray<double> a(1000);
  CHECK(a.size() == 1000);
  CHECK_FALSE(a.empty());
  CHECK(std::all_of(a.begin(), a.end(), [](double x) { return x == 0.0; }));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i);
  CHECK(a.data()[999] == 999.0);
  CHECK(a.end() - a.begin() == 1000);
  const std::span<double> s = a.span();
  CHECK(s.size() == 1000);
  CHECK(s.data() == a.data());

  const SharedArray<double> copy = a;  // a handle: the same memory
  copy[3] = -3.0;
  CHECK(a[3] == -3.0);

  const SharedArray<double> view = a.subspan(10, 5);
  CHECK(view.size() == 5);
  CHECK(view.data() == a.data() + 10);
  CHECK(view[0] == 10.0);
  const SharedArray<double> inner = view.subspan(2, 3);
  CHECK(inner.data() == a.data() + 12);
  CHECK(a.subspan(1000, 0).empty());
  CHECK_THROWS_AS((void)a.subspan(999, 2), std::out_of_range);
  CHECK_THROWS_AS((void)view.subspan(6, 0), std::out_of_range);
  CHECK_THROWS_AS(SharedArray<double>(~std::size_t{0}), std::length_error);
}

TEST_CASE("shared - a Shared value in the parent and in tasks" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::vector<int> values(10'000, 3);
  const Shared<std::vector<int>> shared = pool.share(values);
  CHECK(shared.get() == values);
  CHECK((*shared).size() == 10'000);
  CHECK(shared->front() == 3);
  CHECK(&shared.get() == &*shared);  // decoded once, kept
  const Shared<std::vector<int>> copy = shared;
  CHECK(&copy.get() == &shared.get());
  CHECK(pool.apply(sum_shared, shared) == 30'000);
  CHECK_THROWS_AS((void)Shared<int>().get(), procpool::ValueError);
  // Large values go straight into shared memory.
  const Shared<std::vector<int>> large = pool.share(std::vector<int>(1 << 20, 1));
  CHECK(pool.apply(sum_shared, large) == (1 << 20));
}

TEST_CASE("shared - a Shared value used by 1,000 tasks is decoded once per worker" * doctest::timeout(120)) {
  procpool::Pool pool(2);
  Counted counted;
  counted.values.resize(1000);
  std::iota(counted.values.begin(), counted.values.end(), 0);
  const Shared<Counted> shared = pool.share(counted);
  std::vector<procpool::AsyncResult<std::pair<int, int>>> results;
  for (int i = 0; i < 1000; ++i) results.push_back(pool.apply_async(sum_and_decodes, shared, i));
  for (int i = 0; i < 1000; ++i) {
    const auto [value, count] = results[static_cast<std::size_t>(i)].get();
    CHECK(value == i);
    CHECK(count == 1);
  }
  CHECK(decodes == 0);  // the parent never read it
  CHECK(shared->values.size() == 1000);
  CHECK(decodes == 1);
}

TEST_CASE("shared - handles dropped while their tasks are queued" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  auto blocker = pool.apply_async(sleep_then, 200);
  std::vector<procpool::AsyncResult<long>> results;
  {
    const auto shared = pool.share(std::vector<int>(100, 2));
    SharedArray<int> array(50);
    std::fill(array.begin(), array.end(), 1);
    for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(sum_both, shared, array));
  }
  for (auto& r : results) CHECK(r.get() == 250);
  CHECK(blocker.get() == 200);
}

TEST_CASE("shared - the pool ends before the handle" * doctest::timeout(60)) {
  Shared<std::vector<int>> shared;
  SharedArray<int> array(8);
  {
    procpool::Pool pool(2);
    shared = pool.share(std::vector<int>{1, 2, 3});
    pool.starmap(fill_slice, std::vector{std::tuple{array.subspan(0, 4), 1}, std::tuple{array.subspan(4, 4), 2}}, 1);
    CHECK(pool.apply(sum_shared, shared) == 6);
  }
  CHECK(shared.get() == std::vector<int>{1, 2, 3});
  CHECK(sum_array(array) == 12);
}

TEST_CASE("shared - a pool built before the array; a map fills its slices in place" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::size_t n = 1 << 20;
  const std::size_t slice = 1 << 14;
  SharedArray<int> array(n);
  std::vector<std::tuple<SharedArray<int>, int>> work;
  for (std::size_t i = 0; i < n; i += slice) work.emplace_back(array.subspan(i, slice), static_cast<int>(i / slice));
  pool.starmap(fill_slice, work);
  bool all = true;
  for (std::size_t i = 0; i < n; ++i) all = all && array[i] == static_cast<int>(i / slice);
  CHECK(all);
  CHECK(pool.apply(sum_array, array.subspan(slice, slice)) == static_cast<long>(slice));
}

TEST_CASE("shared - a worker killed while using an array fails only its task; its replacement maps it" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  SharedArray<int> array(8);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 8; ++i) results.push_back(pool.apply_async(set_or_die, array, i));
  for (int i = 0; i < 8; ++i) {
    if (i == 1) {
      CHECK_THROWS_AS(results[1].get(), procpool::WorkerLost);
    } else {
      CHECK(results[static_cast<std::size_t>(i)].get() > 0);
    }
  }
  CHECK(array[1] == 2);  // written before the worker died: the same memory
  for (int i = 0; i < 8; ++i) {
    if (i != 1) CHECK(array[static_cast<std::size_t>(i)] == i + 1);
  }
  // Every worker, the replacement included, still reads and writes it.
  std::vector<std::tuple<SharedArray<int>, int>> work;
  for (int i = 0; i < 8; ++i) work.emplace_back(array.subspan(static_cast<std::size_t>(i), 1), 100);
  pool.starmap(fill_slice, work, 1);
  CHECK(sum_array(array) == 800);
  std::vector<long> sums = pool.map(sum_array, std::vector<SharedArray<int>>(20, array), 1);
  CHECK(std::all_of(sums.begin(), sums.end(), [](long s) { return s == 800; }));
}

TEST_CASE("shared - a Process child writes into a SharedArray" * doctest::timeout(30)) {
  SharedArray<int> array(1000);
  procpool::Process child(fill_slice, array.subspan(500, 500), 7);
  child.start();
  child.join();
  CHECK(child.exitcode() == 0);
  CHECK(sum_array(array.subspan(0, 500)) == 0);
  CHECK(sum_array(array.subspan(500, 500)) == 3500);
}

TEST_CASE("shared - forged handles fail their task with SerializationError" * doctest::timeout(60)) {
  procpool::Pool pool(1);
  SharedArray<int> array(16);
  const auto value = pool.share(std::vector<int>{1, 2});
  CHECK(pool.apply(forged_size, ForgedArray{array, 0, 4, 8, sizeof(int)}) == 8);  // a fair one
  const std::vector<ForgedArray> bad = {
      {array, 12345, 0, 1, sizeof(int)},          // an id the worker never got
      {array, 0, 17, 0, sizeof(int)},             // an offset past the end
      {array, 0, 8, 9, sizeof(int)},              // a count past the end
      {array, 0, 1, ~std::uint64_t{0}, sizeof(int)},  // a count that wraps
      {array, 0, 0, 1, 8},                        // another element size
  };
  for (const ForgedArray& forged : bad) {
    CHECK_THROWS_AS(pool.apply(forged_size, forged), procpool::SerializationError);
  }
  // An array's id read as a value, a vector's as a string.
  CHECK_THROWS_AS(pool.apply(forged_value<int>, ForgedValue<int>{array, value, true, {}}),
                  procpool::SerializationError);
  CHECK_THROWS_AS(pool.apply(forged_value<std::string>, ForgedValue<std::string>{array, value, false, {}}),
                  procpool::SerializationError);
  // A worker still there, and still serving the real ones.
  CHECK(pool.apply(sum_shared, value) == 3);
  CHECK(pool.worker_pids().size() == 1);
}

TEST_CASE("shared - nothing is left behind: fds, /dev/shm, mappings, in the parent and the workers" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  // Warm up: the pool's threads make their allocator arenas once.
  for (int i = 0; i < 50; ++i) (void)pool.apply(sleep_then, 0);
  const std::size_t fds = test_support::open_fd_count();
  const auto shm = test_support::dev_shm();
  const std::size_t maps = test_support::shared_mapping_count();
  {
    SharedArray<int> array(1 << 20);
    const auto shared = pool.share(std::vector<int>(1 << 18, 1));
    std::vector<procpool::AsyncResult<long>> results;
    for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(sum_both, shared, array));
    for (auto& r : results) CHECK(r.get() == (1 << 18));
    CHECK(test_support::open_fd_count() > fds);
    CHECK(test_support::dev_shm() == shm);  // unnamed
    const auto pids = pool.worker_pids();
    CHECK(std::any_of(pids.begin(), pids.end(), maps_name_shared));  // so the check below means something
  }
  CHECK(test_support::eventually([&] { return test_support::open_fd_count() == fds; }));
  CHECK(test_support::eventually([&] { return test_support::shared_mapping_count() == maps; }));
  CHECK(test_support::dev_shm() == shm);
  // The workers were told to forget them.
  for (const pid_t pid : pool.worker_pids()) {
    CHECK(test_support::eventually([&] { return !maps_name_shared(pid); }));
  }
}

TEST_CASE("shared - an array made before the pool is not inherited by its workers, only sent" *
          doctest::timeout(60)) {
  auto array = std::make_unique<SharedArray<int>>(1 << 16);
  procpool::Pool pool(2);
  for (const pid_t pid : pool.worker_pids()) CHECK_FALSE(maps_name_shared(pid));
  std::fill(array->begin(), array->end(), 1);
  CHECK(pool.apply(sum_array, *array) == (1 << 16));
  array.reset();
  for (const pid_t pid : pool.worker_pids()) {
    CHECK(test_support::eventually([&] { return !maps_name_shared(pid); }));
  }
}

TEST_CASE("shared - thousands of distinct shared values in flight: block messages wait, nothing blocks" *
          doctest::timeout(120)) {
  procpool::Pool pool(1);
  // More block messages than a socket buffer holds, all for tasks queued at once.
  std::vector<procpool::AsyncResult<long>> results;
  for (int i = 0; i < 3000; ++i) results.push_back(pool.apply_async(sum_shared, pool.share(std::vector<int>{i, 1})));
  for (int i = 0; i < 3000; ++i) CHECK(results[static_cast<std::size_t>(i)].get() == i + 1);
}

TEST_CASE("shared - a pool's workers do not keep another pool's shared memory" * doctest::timeout(60)) {
  procpool::Pool first(1);
  procpool::Pool second(1);  // forked while `first` is alive
  const pid_t a = first.worker_pids().at(0);
  const pid_t b = second.worker_pids().at(0);
  // The same layout each, once both have restricted their view of their arenas
  // (just after they start): their own rings and arenas, nothing of the other pool's.
  CHECK(test_support::eventually([&] {
    return test_support::shared_mapping_count(std::to_string(b)) ==
           test_support::shared_mapping_count(std::to_string(a));
  }));
}
