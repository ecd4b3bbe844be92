// procpool::mpi::Pool under mpirun -n 3: AsyncResult::cancel() and
// TaskOptions (priority; the options that do not apply on MPI). The ranks are
// held busy by gate tasks that wait for a file, so the tasks behind them are
// known to be queued; tasks log "<pid> <label>" lines to a file (the ranks
// share rank 0's host) to show which ran, where and in what order.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <procpool/mpi.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rank_id.hpp"

using namespace std::chrono_literals;

namespace {

// Appends "<rank_id> <label>" to `log` in one write (O_APPEND: lines never mix).
void log_line(const std::string& log, const std::string& label) {
  const std::string line = std::to_string(rank_id()) + " " + label + "\n";
  const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + log);
  const auto written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) throw std::runtime_error("cannot write " + log);
}

// Holds its rank until `gate` exists.
int wait_for_gate(std::string gate) {
  while (::access(gate.c_str(), F_OK) != 0) std::this_thread::sleep_for(5ms);
  return 0;
}

// A gate task that logs `label` when it passes.
int logged_gate(std::string gate, std::string log, std::string label) {
  wait_for_gate(gate);
  log_line(log, label);
  return 0;
}

int logged(std::string log, std::string label, int value) {
  log_line(log, label);
  return value;
}

// A map's callable: logs each item it is given.
struct LogItem {
  std::string log;
  int operator()(int value) const {
    log_line(log, "item" + std::to_string(value));
    return value;
  }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(log);
  }
};

int square(int x) { return x * x; }

// A log and a gate file of one test case, removed at its end.
struct Files {
  std::string log;
  std::string gate;
  explicit Files(const std::string& name) {
    const std::string base = "/tmp/procpool_mpi_control_" + std::to_string(::getpid()) + "_" + name;
    log = base + ".log";
    gate = base + ".gate";
    std::remove(log.c_str());
    std::remove(gate.c_str());
  }
  ~Files() {
    std::remove(log.c_str());
    std::remove(gate.c_str());
  }
  void open_gate() const { std::ofstream(gate).put('1'); }
  // The logged lines in order, as {rank_id, label}.
  std::vector<std::pair<int, std::string>> lines() const {
    std::vector<std::pair<int, std::string>> out;
    std::ifstream in(log);
    int pid = 0;
    std::string label;
    while (in >> pid >> label) out.emplace_back(pid, label);
    return out;
  }
  std::map<std::string, int> runs() const {
    std::map<std::string, int> count;
    for (const auto& [pid, label] : lines()) ++count[label];
    return count;
  }
};

// Fills both ranks (one task running and one waiting on each), so that what
// is submitted next stays queued on rank 0 until the gate opens.
std::vector<procpool::AsyncResult<int>> hold_ranks(procpool::mpi::Pool& pool, const Files& files) {
  std::vector<procpool::AsyncResult<int>> gates;
  for (int i = 0; i < 2 * pool.size(); ++i) gates.push_back(pool.apply_async(wait_for_gate, files.gate));
  return gates;
}

}  // namespace

TEST_CASE("mpi control - cancel() of queued tasks: exactly those fail with Cancelled, and never run" *
          doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const Files files("queued");
  auto gates = hold_ranks(pool, files);
  std::vector<procpool::AsyncResult<int>> tasks;
  for (int i = 0; i < 40; ++i) tasks.push_back(pool.apply_async(logged, files.log, "t" + std::to_string(i), i));
  for (int i = 0; i < 40; i += 2) CHECK(tasks[static_cast<std::size_t>(i)].cancel());
  // Cancelled at once, while the ranks are still held.
  for (int i = 0; i < 40; i += 2) CHECK(tasks[static_cast<std::size_t>(i)].ready());
  files.open_gate();
  for (int i = 0; i < 40; ++i) {
    auto& r = tasks[static_cast<std::size_t>(i)];
    if (i % 2 == 0) {
      CHECK_THROWS_AS(r.get(), procpool::Cancelled);
      CHECK_FALSE(r.cancel());  // already finished (failed)
    } else {
      CHECK(r.get() == i);
    }
  }
  for (auto& g : gates) CHECK(g.get() == 0);
  pool.close();
  pool.join();
  const auto runs = files.runs();
  for (int i = 0; i < 40; ++i) {
    const auto it = runs.find("t" + std::to_string(i));
    CHECK_MESSAGE((it == runs.end() ? 0 : it->second) == (i % 2 == 0 ? 0 : 1), "task t", i);
  }
}

TEST_CASE("mpi control - cancel() of a task sent to a rank but not started: the rank skips it" *
          doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const Files files("sent");
  // One gate running on each rank; the next two tasks wait behind them, on the ranks.
  std::vector<procpool::AsyncResult<int>> gates;
  for (int i = 0; i < pool.size(); ++i) gates.push_back(pool.apply_async(wait_for_gate, files.gate));
  auto a = pool.apply_async(logged, files.log, "a", 1);
  auto b = pool.apply_async(logged, files.log, "b", 2);
  auto c = pool.apply_async(logged, files.log, "c", 3);  // queued on rank 0
  std::this_thread::sleep_for(300ms);  // rank 0's manager sends a and b meanwhile
  CHECK(a.cancel());
  CHECK(b.cancel());
  CHECK_THROWS_AS(a.get(), procpool::Cancelled);
  CHECK_THROWS_AS(b.get(), procpool::Cancelled);
  CHECK_FALSE(a.cancel());
  // The cancels travel to the ranks behind the tasks; let them arrive before
  // the ranks look at the tasks.
  std::this_thread::sleep_for(500ms);
  files.open_gate();
  CHECK(c.get() == 3);
  for (auto& g : gates) CHECK(g.get() == 0);
  CHECK(pool.apply(square, 7) == 49);  // the ranks' slots were given back
  pool.close();
  pool.join();
  const auto runs = files.runs();
  CHECK(runs.count("a") == 0);
  CHECK(runs.count("b") == 0);
  CHECK(runs.at("c") == 1);
}

TEST_CASE("mpi control - cancel() of a running task: true, Cancelled at once, the rank finishes it" *
          doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const Files files("running");
  auto gate = pool.apply_async(logged_gate, files.gate, files.log, "gate");
  std::this_thread::sleep_for(300ms);  // it has started on its rank (or is about to)
  CHECK(gate.cancel());
  CHECK_THROWS_AS(gate.get(), procpool::Cancelled);
  // The other rank is free meanwhile.
  CHECK(pool.apply(square, 5) == 25);
  files.open_gate();
  // join() does not wait for a cancelled task; its rank still runs it to the end.
  pool.close();
  pool.join();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (files.runs().count("gate") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(files.runs().count("gate") == 1);
}

TEST_CASE("mpi control - cancel() after completion returns false and changes nothing" * doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  auto r = pool.apply_async(square, 3);
  CHECK(r.get() == 9);
  CHECK_FALSE(r.cancel());
  CHECK(r.get() == 9);
  CHECK(r.successful());
}

TEST_CASE("mpi control - cancel() of a map_async result cancels its thousands of queued chunks" *
          doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const Files files("map");
  auto gates = hold_ranks(pool, files);
  std::vector<int> items(5000);
  for (int i = 0; i < 5000; ++i) items[static_cast<std::size_t>(i)] = i;
  auto whole = pool.map_async(LogItem{files.log}, items, 1);
  CHECK(whole.cancel());
  CHECK(whole.ready());
  CHECK_THROWS_AS(whole.get(), procpool::Cancelled);
  CHECK_FALSE(whole.cancel());
  files.open_gate();
  for (auto& g : gates) CHECK(g.get() == 0);
  CHECK(pool.map(square, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 4, 9});
  pool.close();
  pool.join();
  CHECK(files.lines().empty());  // no chunk ran
}

TEST_CASE("mpi control - TaskOptions::priority: higher first among queued tasks, ties in submission order" *
          doctest::timeout(120)) {
  procpool::mpi::Pool pool;
  const Files files("priority");
  auto gates = hold_ranks(pool, files);
  // Submitted low first; expected to leave rank 0 as h0..h3, m0..m3, l0..l3.
  std::vector<procpool::AsyncResult<int>> tasks;
  const std::vector<std::pair<char, int>> levels = {{'l', -1}, {'m', 0}, {'h', 5}};
  for (const auto& [name, priority] : levels) {
    for (int i = 0; i < 4; ++i) {
      tasks.push_back(pool.apply_async(procpool::TaskOptions{.priority = priority}, logged, files.log,
                                       std::string(1, name) + std::to_string(i), i));
    }
  }
  files.open_gate();
  for (auto& t : tasks) t.get();
  for (auto& g : gates) g.get();
  pool.close();
  pool.join();
  // Each rank runs what it is sent in order: on every rank, the labels it ran
  // come in the queue's order.
  const auto rank_of = [](const std::string& label) {
    const int level = label[0] == 'h' ? 0 : label[0] == 'm' ? 1 : 2;
    return level * 10 + (label[1] - '0');
  };
  std::map<int, std::vector<std::string>> by_rank;
  for (const auto& [pid, label] : files.lines()) by_rank[pid].push_back(label);
  std::size_t total = 0;
  for (const auto& [pid, labels] : by_rank) {
    total += labels.size();
    for (std::size_t i = 1; i < labels.size(); ++i) {
      CHECK_MESSAGE(rank_of(labels[i - 1]) < rank_of(labels[i]), labels[i - 1], " ran before ", labels[i]);
    }
  }
  CHECK(total == 12);
}

TEST_CASE("mpi control - TaskOptions that cannot apply on a rank are refused at submission" *
          doctest::timeout(60)) {
  procpool::mpi::Pool pool;
  CHECK_THROWS_WITH_AS((void)pool.apply_async(procpool::TaskOptions{.timeout = 1s}, square, 2),
                       doctest::Contains("procpool::mpi::Pool::apply_async: TaskOptions::timeout does not apply"),
                       procpool::ValueError);
  CHECK_THROWS_WITH_AS(pool.apply(procpool::TaskOptions{.soft_timeout = 1s}, square, 2),
                       doctest::Contains("TaskOptions::soft_timeout does not apply"), procpool::ValueError);
  CHECK_THROWS_AS((void)pool.apply_async(procpool::TaskOptions{.retries = -1}, square, 2), procpool::ValueError);
  // Those that do apply.
  CHECK(pool.apply(procpool::TaskOptions{.retries = 2, .priority = 3}, square, 4) == 16);
  pool.close();
  pool.join();
}
