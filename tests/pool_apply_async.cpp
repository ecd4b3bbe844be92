// Pool::apply_async / apply with every kind of callable and many argument types.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <thread>
#include <procpool/procpool.hpp>
#include <unistd.h>

namespace {

int square(int x) { return x * x; }
std::string greet(const std::string& name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hello " + name + ";";
  return out;
}
double hypotenuse(double a, double b) { return std::sqrt(a * a + b * b); }
pid_t worker_pid() { return ::getpid(); }
void do_nothing() {}

struct Scale {
  double factor = 1;
  double operator()(double x) const { return x * factor; }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(factor);
  }
};

struct Point {
  int x = 0;
  int y = 0;
  std::string label;
  bool operator==(const Point&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y, label);
  }
};

Point mirror(Point p) { return {p.y, p.x, p.label + "'"}; }

}  // namespace

TEST_CASE("pool - apply_async runs a free function in a worker process" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  auto result = pool.apply_async(square, 7);
  CHECK(result.get() == 49);
  CHECK(result.get() == 49);  // get() may be called again
  const pid_t pid = pool.apply(worker_pid);
  CHECK(pid != ::getpid());
  const auto pids = pool.worker_pids();
  CHECK(std::find(pids.begin(), pids.end(), pid) != pids.end());
}

TEST_CASE("pool - captureless lambdas and serializable function objects are tasks" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  CHECK(pool.apply([](int x) { return x + 1; }, 1) == 2);
  CHECK(pool.apply([] { return std::string("no arguments"); }) == "no arguments");
  CHECK(pool.apply(Scale{2.5}, 4.0) == doctest::Approx(10.0));
  CHECK(pool.apply(Scale{-1}, 3.0) == doctest::Approx(-3.0));
}

TEST_CASE("pool - arguments and results of the common std and user types round-trip" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  CHECK(pool.apply(greet, std::string("ann"), 2) == "hello ann;hello ann;");
  CHECK(pool.apply(greet, "a C string", 1) == "hello a C string;");
  CHECK(pool.apply(hypotenuse, 3.0, 4.0) == doctest::Approx(5.0));
  CHECK(pool.apply(mirror, Point{1, 2, "p"}) == Point{2, 1, "p'"});

  const std::vector<int> numbers{1, 2, 3, 4};
  CHECK(pool.apply([](std::vector<int> v) { return std::accumulate(v.begin(), v.end(), 0); }, numbers) == 10);
  const std::map<std::string, int> ages{{"a", 1}, {"b", 2}};
  CHECK(pool.apply([](std::map<std::string, int> m) { return m.at("b"); }, ages) == 2);
  const auto swapped = pool.apply([](std::tuple<int, std::string> t) { return std::make_tuple(std::get<1>(t), std::get<0>(t)); },
                                  std::make_tuple(5, std::string("five")));
  CHECK(swapped == std::make_tuple(std::string("five"), 5));
  CHECK(pool.apply([](std::optional<int> o) { return o.value_or(-1); }, std::optional<int>{}) == -1);
  CHECK(pool.apply([](std::variant<int, std::string> v) { return v.index(); },
                   std::variant<int, std::string>{std::string("x")}) == 1);
  CHECK(pool.apply([](std::pair<int, int> p) { return std::optional<int>(p.first * p.second); }, std::pair{6, 7}) == 42);
}

TEST_CASE("pool - a void task gives an AsyncResult<void>" * doctest::timeout(30)) {
  procpool::Pool pool(2);
  procpool::AsyncResult<void> done = pool.apply_async(do_nothing);
  done.get();
  CHECK(done.ready());
  CHECK(done.successful());
  pool.apply([](int) {}, 1);
}

TEST_CASE("pool - thousands of tasks all come back with the right values" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 20000; ++i) results.push_back(pool.apply_async(square, i));
  long long sum = 0;
  bool all_right = true;
  for (int i = 0; i < 20000; ++i) {
    const int v = results[static_cast<std::size_t>(i)].get();
    all_right = all_right && v == i * i;
    sum += v;
  }
  CHECK(all_right);
  CHECK(sum == 2666466670000LL);
}

TEST_CASE("pool - tasks submitted from several threads at once all complete" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<procpool::AsyncResult<int>> mine;
      for (int i = 0; i < 2000; ++i) mine.push_back(pool.apply_async(square, t * 10000 + i));
      for (int i = 0; i < 2000; ++i) {
        if (mine[static_cast<std::size_t>(i)].get() != square(t * 10000 + i)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}

TEST_CASE("pool - payloads of every size around the ring's limits round-trip" * doctest::timeout(60)) {
  procpool::Pool pool(2);
  for (std::size_t size : {0UL, 1UL, 100UL, 4000UL, 40000UL, 65000UL, 65536UL, 70000UL, 200000UL, 3000000UL}) {
    std::string s(size, 'x');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
    const std::string back = pool.apply([](std::string v) { return v; }, s);
    CHECK_MESSAGE(back == s, "size " << size);
  }
}

namespace {
std::string tag_large(std::string payload, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return payload.substr(0, 16);
}
}  // namespace

TEST_CASE("pool - large payloads taken from a busy worker by an idle one stay paired with their tasks" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  // One worker is held up while large tasks queue behind it; the other goes idle
  // and takes them over. Each of twelve large tasks is tagged at its start,
  // and its result must carry its own tag.
  auto wave = [&](const std::string& prefix, char fill, int ms) {
    std::vector<procpool::AsyncResult<std::string>> results;
    for (int i = 0; i < 12; ++i) {
      std::string payload(200000, fill);
      const std::string tag = prefix + std::to_string(i) + "-";
      payload.replace(0, tag.size(), tag);
      results.push_back(pool.apply_async(tag_large, payload, ms));
    }
    return results;
  };
  auto check = [](std::vector<procpool::AsyncResult<std::string>>& results, const std::string& prefix) {
    for (int i = 0; i < 12; ++i) {
      const std::string tag = prefix + std::to_string(i) + "-";
      CHECK(results[static_cast<std::size_t>(i)].get().substr(0, tag.size()) == tag);
    }
  };
  auto blocker = pool.apply_async(tag_large, std::string(100000, '#'), 400);
  auto first = wave("task-", 'a', 5);
  check(first, "task-");
  CHECK(blocker.get() == std::string(16, '#'));
  // A second wave reaches the worker that was robbed as well.
  auto again = wave("again-", 'b', 1);
  check(again, "again-");
}
