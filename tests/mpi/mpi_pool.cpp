// procpool::mpi::Pool under mpirun -n 3: every member of the task surface,
// the error model, large payloads, sequential and concurrent pools.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <numeric>
#include <procpool/mpi.hpp>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "rank_id.hpp"

using namespace std::chrono_literals;

namespace {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int square(int x) { return x * x; }

// x * x (x < 1000), with the rank_id() of the rank that ran it in the high digits.
long long square_with_pid(int x) { return static_cast<long long>(rank_id()) * 10'000'000 + x * x; }
int add(int a, int b) { return a + b; }
int pid_after(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return rank_id();
}
int fail_on_three(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}
int throw_parse_error(int line) { throw ParseError("line " + std::to_string(line) + ": unexpected token"); }
int throw_int() { throw 42; }
void touch(int) {}

// Serializes fine here; its load always fails in the worker.
struct Fragile {
  template <class Archive>
  void save(Archive& ar) const {
    ar(1);
  }
  template <class Archive>
  void load(Archive&) {
    throw std::runtime_error("Fragile refuses to be loaded");
  }
};
int take_fragile(Fragile) { return 1; }

struct Scale {
  int factor = 1;
  int operator()(int x) const { return x * factor; }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(factor);
  }
};

}  // namespace

TEST_CASE("mpi - size is the number of ranks but rank 0" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  CHECK(pool.size() == 2);
}

TEST_CASE("mpi - apply_async and apply with free functions, lambdas and function objects" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  auto r = pool.apply_async(add, 2, 3);
  CHECK(r.get() == 5);
  CHECK(r.get() == 5);  // get() may be called again
  CHECK(pool.apply([](int x) { return x + 1; }, 41) == 42);
  CHECK(pool.apply(Scale{3}, 5) == 15);
  CHECK(pool.apply([](std::string s) { return s + "!"; }, "hi") == "hi!");
  pool.apply(touch, 1);  // void
  std::vector<procpool::AsyncResult<int>> many;
  for (int i = 0; i < 1000; ++i) many.push_back(pool.apply_async(square, i));
  for (int i = 0; i < 1000; ++i) CHECK(many[static_cast<std::size_t>(i)].get() == i * i);
}

TEST_CASE("mpi - tasks run on the worker ranks, not on rank 0" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  // Two at once: one per worker rank (the least loaded one gets each task).
  auto a = pool.apply_async(pid_after, 200);
  auto b = pool.apply_async(pid_after, 200);
  const std::set<int> pids{a.get(), b.get()};
  CHECK(pids.size() == 2);
  CHECK(pids.count(rank_id()) == 0);
}

TEST_CASE("mpi - a stream of short tasks, sent and answered several to a message, comes back whole" *
          doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  for (int round = 0; round < 3; ++round) {
    std::vector<procpool::AsyncResult<long long>> results;
    for (int i = 0; i < 20000; ++i) results.push_back(pool.apply_async(square_with_pid, i % 1000));
    // Every rank took part, and each result is its own task's.
    std::set<long long> ranks;
    for (int i = 0; i < 20000; ++i) {
      const long long r = results[static_cast<std::size_t>(i)].get();
      CHECK(r % 10'000'000 == (i % 1000) * (i % 1000));
      ranks.insert(r / 10'000'000);
    }
    CHECK(static_cast<int>(ranks.size()) == pool.size());
  }
  // A long task after them is still sent alone, one per rank.
  auto a = pool.apply_async(pid_after, 200);
  auto b = pool.apply_async(pid_after, 200);
  CHECK(a.get() != b.get());
}

TEST_CASE("mpi - map, map_async, starmap, starmap_async in input order" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::vector<int> xs(1000);
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> expected;
  for (int x : xs) expected.push_back(x * x);
  CHECK(pool.map(square, xs) == expected);
  CHECK(pool.map(square, xs, 7) == expected);
  CHECK(pool.map_async(square, xs, 1).get() == expected);
  CHECK(pool.map(square, std::vector<int>{}).empty());
  pool.map(touch, xs);  // void
  std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  CHECK(pool.starmap(add, pairs) == std::vector<int>{3, 7, 11});
  CHECK(pool.starmap_async(add, std::vector<std::tuple<int, int>>{{10, 1}}).get() == std::vector<int>{11});
  // Every item runs; the first failure by position is thrown.
  CHECK_THROWS_WITH_AS(pool.map(fail_on_three, xs, 2), "three is not allowed", std::invalid_argument);
}

TEST_CASE("mpi - map and starmap over a single-pass input range" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::string text;
  std::vector<int> expected, sums;
  for (int i = 0; i < 500; ++i) {
    text += std::to_string(i) + ' ';
    expected.push_back(i * i);
    sums.push_back(i + 1);
  }
  for (std::size_t chunksize : {0UL, 7UL}) {
    std::istringstream in(text);
    CHECK(pool.map(square, std::views::istream<int>(in), chunksize) == expected);
    std::istringstream again(text);
    auto pairs = std::views::istream<int>(again) | std::views::transform([](int i) { return std::pair<int, int>(i, 1); });
    CHECK(pool.starmap_async(add, pairs, chunksize).get() == sums);
  }
}

TEST_CASE("mpi - imap in order, imap_unordered in any order, lazily" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::vector<int> got;
  for (int v : pool.imap(square, std::views::iota(0, 200), 3)) got.push_back(v);
  std::vector<int> expected;
  for (int i = 0; i < 200; ++i) expected.push_back(i * i);
  CHECK(got == expected);

  auto it = pool.imap_unordered(square, std::views::iota(0, 100));
  std::multiset<int> unordered;
  while (auto v = it.next(10s)) unordered.insert(*v);
  CHECK(unordered == std::multiset<int>(expected.begin(), expected.begin() + 100));

  // An endless input: only what is consumed (plus a bounded look-ahead) runs.
  auto endless = pool.imap(square, std::views::iota(0));
  for (int i = 0; i < 50; ++i) CHECK(*endless.next() == i * i);

  auto failing = pool.imap(fail_on_three, std::vector<int>{1, 2, 3, 4});
  CHECK(*failing.next() == 1);
  CHECK(*failing.next() == 2);
  CHECK_THROWS_AS(failing.next(), std::invalid_argument);
  CHECK(*failing.next() == 4);
  CHECK_FALSE(failing.next().has_value());
}

TEST_CASE("mpi - once an imap's iterator is gone, close() reads no more of its input" * doctest::timeout(60)) {
  std::atomic<long> pulled{0};
  // Long: reading it all would run thousands more tasks (an endless one, forever).
  // Item 0 is quick; the few after it (its look-ahead) take 100 ms each.
  auto delays = std::views::iota(0, 5000) | std::views::transform([&pulled](int x) {
                  ++pulled;
                  return x >= 1 && x <= 6 ? 100 : 0;
                });
  for (const bool finished : {false, true}) {
    CAPTURE(finished);
    procpool::mpi::Pool pool;
    {
      auto dropped = pool.imap(pid_after, delays);
      CHECK(dropped.next().has_value());
    }
    // Its look-ahead still running (its chunks hold the imap's state), or
    // finished unseen (the manager has delivered them and gone idle since).
    if (finished) std::this_thread::sleep_for(1s);
    const long read = pulled.load();
    pool.close();
    pool.join();
    CHECK(pulled.load() == read);
  }
}

TEST_CASE("mpi - AsyncResult: wait, ready, successful, get(timeout), then" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  auto slow = pool.apply_async(pid_after, 300);
  CHECK_FALSE(slow.ready());
  CHECK_THROWS_AS((void)slow.successful(), procpool::ValueError);
  CHECK_THROWS_AS(slow.get(10ms), procpool::TimeoutError);
  CHECK_FALSE(slow.wait(10ms));
  slow.wait();
  CHECK(slow.ready());
  CHECK(slow.successful());
  CHECK(slow.get(1s) > 0);

  auto failed = pool.apply_async(fail_on_three, 3);
  failed.wait();
  CHECK_FALSE(failed.successful());

  std::promise<int> seen;
  pool.apply_async(square, 9).then([&](const int& v) { seen.set_value(v); });
  CHECK(seen.get_future().get() == 81);
  std::promise<std::string> error_seen;
  pool.apply_async(fail_on_three, 3).then([](const int&) {}, [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      error_seen.set_value(x.what());
    }
  });
  CHECK(error_seen.get_future().get() == "three is not allowed");
  // A callback may wait on another result: callbacks do not run on the thread that delivers results.
  std::promise<int> nested;
  pool.apply_async(square, 2).then([&](const int& v) { nested.set_value(v + pool.apply(square, 3)); });
  CHECK(nested.get_future().get() == 13);
  // A result outlives its pool.
  procpool::AsyncResult<int> kept = [] {
    procpool::mpi::Pool inner;
    return inner.apply_async(square, 12);
  }();
  CHECK(kept.get() == 144);
}

TEST_CASE("mpi - task errors come back as in the local pool" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  CHECK_THROWS_WITH_AS(pool.apply(fail_on_three, 3), "three is not allowed", std::invalid_argument);
  CHECK_THROWS_WITH_AS(pool.apply([](int) -> int { throw std::out_of_range("no item 7"); }, 7), "no item 7",
                       std::out_of_range);
  CHECK_THROWS_AS(pool.apply([](int) -> int { throw std::bad_alloc(); }, 0), std::bad_alloc);
  auto worker_pid = pool.apply(pid_after, 0);
  try {
    pool.apply(throw_parse_error, 3);
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(std::string(e.what()) == "line 3: unexpected token");
    CHECK(e.type_name().find("ParseError") != std::string::npos);
    CHECK(e.worker_pid() > 0);
    CHECK(e.worker_pid() != ::getpid());
  }
  (void)worker_pid;
  try {
    pool.apply(throw_int);
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "int");
  }
  // A task argument that does not load in the worker: SerializationError, and the pool goes on.
  CHECK_THROWS_WITH_AS(pool.apply(take_fragile, Fragile{}), doctest::Contains("Fragile refuses to be loaded"),
                       procpool::SerializationError);
  CHECK(pool.apply(square, 4) == 16);
}

TEST_CASE("mpi - a 64 MiB payload each way, in pieces" * doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  std::string big(std::size_t{64} << 20, 'x');
  big[12345] = 'y';
  CHECK(pool.apply([](const std::string& s) { return std::count(s.begin(), s.end(), 'y') + s.size(); }, big) ==
        big.size() + 1);
  const std::string back = pool.apply([](std::size_t n) { return std::string(n, 'z'); }, big.size());
  CHECK(back.size() == big.size());
  CHECK(back.find_first_not_of('z') == std::string::npos);
  // Between the inline limit and a single piece, and a chunked map of large items.
  std::vector<std::string> items(6, std::string(std::size_t{3} << 20, 'a'));
  const auto sizes = pool.map([](const std::string& s) { return s.size(); }, items, 2);
  CHECK(sizes == std::vector<std::size_t>(6, std::size_t{3} << 20));
}

TEST_CASE("mpi - close, join, terminate and misuse" * doctest::timeout(60)) {
  {
    procpool::mpi::Pool pool;
    CHECK_THROWS_WITH_AS(pool.join(), doctest::Contains("procpool::mpi::Pool::join"), procpool::ValueError);
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(pid_after, 20));
    pool.close();
    CHECK_THROWS_WITH_AS((void)pool.apply_async(square, 1), "procpool::mpi::Pool::apply_async: pool is closed",
                         procpool::ValueError);
    CHECK_THROWS_AS(pool.map(square, std::vector<int>{1}), procpool::ValueError);
    CHECK_THROWS_AS(pool.close(), procpool::ValueError);
    pool.join();  // every queued task has run
    for (auto& r : results) CHECK(r.ready());
    for (auto& r : results) CHECK(r.successful());
    pool.join();
    pool.terminate();  // valid after close() and join(); nothing is left to stop
    for (auto& r : results) CHECK(r.successful());
  }
  {
    procpool::mpi::Pool pool;
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 20; ++i) results.push_back(pool.apply_async(pid_after, 300));
    std::this_thread::sleep_for(50ms);
    const auto start = std::chrono::steady_clock::now();
    pool.terminate();
    pool.join();
    CHECK(std::chrono::steady_clock::now() - start < 200ms);  // never waits for the running tasks
    int terminated = 0;
    for (auto& r : results) {
      CHECK(r.ready());
      try {
        r.get();
      } catch (const procpool::PoolTerminated&) {
        ++terminated;
      }
    }
    CHECK(terminated >= 16);  // at most the two running tasks finished in time
    pool.terminate();  // a second terminate() does nothing
    CHECK_THROWS_AS((void)pool.apply_async(square, 1), procpool::ValueError);
  }
  // The ranks dropped the terminated pool's queued tasks: the next pool is served at once.
  procpool::mpi::Pool next;
  const auto start = std::chrono::steady_clock::now();
  CHECK(next.apply(square, 5) == 25);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("mpi - terminate after close stops a pool stuck behind long tasks" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  std::vector<procpool::AsyncResult<int>> results;
  // Both ranks busy for 2 s (a rank's running task cannot be killed: it runs
  // to its end, and its answer is dropped), the rest queued behind them.
  for (int i = 0; i < 8; ++i) results.push_back(pool.apply_async(pid_after, 2000));
  pool.close();
  CHECK_FALSE(results.front().wait(100ms));
  const auto start = std::chrono::steady_clock::now();
  pool.terminate();
  pool.join();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  for (auto& r : results) {
    CHECK_THROWS_WITH_AS(r.get(), doctest::Contains("procpool::mpi::Pool::terminate"), procpool::PoolTerminated);
  }
  pool.terminate();  // a second terminate() does nothing
  CHECK_THROWS_WITH_AS((void)pool.imap(square, std::vector<int>{1}, 0), "procpool::mpi::Pool::imap: pool is terminated",
                       procpool::ValueError);
}

TEST_CASE("mpi - imap's chunksize error names the MPI pool" * doctest::timeout(30)) {
  procpool::mpi::Pool pool;
  CHECK_THROWS_WITH_AS((void)pool.imap(square, std::vector<int>{1}, 0),
                       "procpool::mpi::Pool::imap: chunksize must be at least 1", procpool::ValueError);
}

TEST_CASE("mpi - pools in sequence and at the same time" * doctest::timeout(60)) {
  for (int round = 0; round < 5; ++round) {
    procpool::mpi::Pool pool;
    CHECK(pool.apply(square, round) == round * round);
    pool.close();
    pool.join();
  }
  procpool::mpi::Pool a;
  procpool::mpi::Pool b;
  auto ra = a.map_async(square, std::vector<int>{1, 2, 3});
  auto rb = b.starmap_async(add, std::vector<std::pair<int, int>>{{1, 1}, {2, 2}}, 1);
  CHECK(ra.get() == std::vector<int>{1, 4, 9});
  CHECK(rb.get() == std::vector<int>{2, 4});
}

namespace {

// Program code written once against the shared surface.
std::vector<long> pipeline(procpool::TaskPool& pool, const std::vector<int>& xs) {
  std::vector<long> out;
  for (int v : pool.map(square, xs)) out.push_back(v);
  for (int v : pool.imap(square, xs, 4)) out.push_back(v);
  std::vector<std::pair<int, int>> pairs;
  for (int x : xs) pairs.emplace_back(x, 1);
  for (int v : pool.starmap(add, pairs)) out.push_back(v);
  out.push_back(pool.apply(Scale{2}, 21));
  try {
    pool.apply(fail_on_three, 3);
  } catch (const std::invalid_argument&) {
    out.push_back(-3);
  }
  out.push_back(pool.size());
  return out;
}

// CPU time (user + system, in clock ticks) this process has used so far.
long own_cpu_ticks() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

// (rank_id(), CPU ticks at its start, at its end), `ms` apart. Each rank reads
// its own: rank 0 cannot read those of a rank on another host.
std::tuple<int, long, long> ticks_around(int ms) {
  const long start = own_cpu_ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return {rank_id(), start, own_cpu_ticks()};
}

}  // namespace

TEST_CASE("mpi - code written against TaskPool& gives the same answers on Pool and mpi::Pool" *
          doctest::timeout(60)) {
  std::vector<int> xs(50);
  std::iota(xs.begin(), xs.end(), -10);
  procpool::mpi::Pool distributed;
  procpool::Pool local(2);
  CHECK(pipeline(distributed, xs) == pipeline(local, xs));
}

TEST_CASE("mpi - an idle pool leaves every rank nearly idle" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  // Two tasks at once, one on each rank; a rank is idle from the end of its
  // first task to the start of its second.
  const auto both_ranks = [&] {
    auto a = pool.apply_async(ticks_around, 200);
    auto b = pool.apply_async(ticks_around, 200);
    return std::vector{a.get(), b.get()};
  };
  std::map<int, long> ended;  // by rank_id()
  // A rank may still run an earlier test's task (terminate() lets a running
  // task end; the other rank then gets both): again, until both answer.
  for (int attempt = 0; attempt < 50 && ended.size() < 2; ++attempt) {
    ended.clear();
    for (const auto& [id, start, end] : both_ranks()) ended[id] = end;
  }
  REQUIRE(ended.size() == 2);
  // Past the back-off's spinning phase, then measure.
  std::this_thread::sleep_for(100ms);
  const long before = own_cpu_ticks();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);
  // Each rank's idle stretch holds this one: dividing by it errs high.
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::vector<double> shares{static_cast<double>(own_cpu_ticks() - before) / hz / seconds};
  for (const auto& [id, started, end] : both_ranks()) {
    REQUIRE(ended.count(id) == 1);
    shares.push_back(static_cast<double>(started - ended[id]) / hz / seconds);
  }
  for (std::size_t i = 0; i < shares.size(); ++i) {
    const std::string who = i == 0 ? std::string("rank 0") : "worker " + std::to_string(i);
    MESSAGE(who << " idle CPU: " << shares[i] * 100 << "%");
    // The ranks sleep on their doorbells (about 0.01%); across hosts, they
    // poll for 100 ms, then sleep until rank 0 rings them over UDP. A tick is 0.33% here.
    CHECK(shares[i] < 0.03);
  }
}
