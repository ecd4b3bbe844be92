// Dispatch from the backlog when room in a worker's ring appears without a
// result: a worker that skips cancelled (or stolen) frames frees room that
// no result announces; and after close(), a worker that runs dry still takes
// a busy one's tasks. Workers are stopped with SIGSTOP to stand for workers
// the scheduler starves (or a long task), so their rings hold frames no one runs.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <procpool/procpool.hpp>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::size_t length(const std::vector<char>& bytes) { return bytes.size(); }

pid_t worker_pid(int) { return ::getpid(); }

// 40 KiB: a ring (256 KiB) holds about six; the rest wait in the backlog.
std::vector<char> payload() { return std::vector<char>(std::size_t{40} << 10, 'x'); }

void signal_all(const std::vector<pid_t>& pids, int sig) {
  for (const pid_t pid : pids) REQUIRE(::kill(pid, sig) == 0);
}

// With every worker stopped: fills both rings and the backlog, then cancels
// it all, so each ring holds only frames its worker will skip.
void fill_rings_with_cancelled(procpool::Pool& pool) {
  const std::vector<char> bytes = payload();
  std::vector<procpool::AsyncResult<std::size_t>> queued;
  for (int i = 0; i < 40; ++i) queued.push_back(pool.apply_async(length, bytes));
  for (auto& r : queued) CHECK(r.cancel());
}

// Stops every worker in `pids` and waits until each is stopped (state T).
void stop_all(const std::vector<pid_t>& pids) {
  signal_all(pids, SIGSTOP);
  REQUIRE(test_support::eventually([&] {
    for (const pid_t pid : pids) {
      if (test_support::proc_state(pid) != "T") return false;
    }
    return true;
  }));
}

}  // namespace

TEST_CASE("dispatch - a task queued behind rings of cancelled frames runs once the workers skip them" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::vector<pid_t> pids = pool.worker_pids();
  REQUIRE(pids.size() == 2);
  stop_all(pids);
  fill_rings_with_cancelled(pool);
  // No ring has room: it waits in the backlog. No result will come to
  // trigger its dispatch; the workers' skipping the frames must.
  const auto late = pool.apply_async(length, payload());
  signal_all(pids, SIGCONT);
  REQUIRE(late.wait(20s));
  CHECK(late.get() == payload().size());
  // And the pool goes on as before.
  CHECK(pool.map(length, std::vector<std::vector<char>>(8, payload())) == std::vector<std::size_t>(8, payload().size()));
}

TEST_CASE("dispatch - a task goes to a worker with room, not to a less loaded one whose ring is full" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::vector<pid_t> pids = pool.worker_pids();  // in slot order
  REQUIRE(pids.size() == 2);
  stop_all(pids);
  fill_rings_with_cancelled(pool);
  // Slot 1's worker skips its frames; slot 0's stays stopped with a full
  // ring and, like slot 1, no task the parent counts: the least loaded.
  signal_all({pids[1]}, SIGCONT);
  const auto late = pool.apply_async(length, payload());
  const bool ran = late.wait(20s);
  signal_all({pids[0]}, SIGCONT);
  REQUIRE(ran);
  CHECK(late.get() == payload().size());
}

TEST_CASE("dispatch - after close(), a worker that runs dry takes the tasks a held-up worker has not started" *
          doctest::timeout(60)) {
  procpool::Pool pool(2);
  const std::vector<pid_t> pids = pool.worker_pids();
  REQUIRE(pids.size() == 2);
  stop_all({pids[0]});
  // Half go to each ring; close() right away, the usual apply_async, close,
  // join. A stop queued behind slot 1's tasks (or sent to it idle) would
  // leave slot 0's five to its held-up worker.
  std::vector<procpool::AsyncResult<pid_t>> results;
  for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(worker_pid, i));
  pool.close();
  // The last task in slot 0's ring stays there: a busy worker keeps one.
  const bool taken = test_support::eventually(
      [&] {
        int ready = 0;
        for (const auto& r : results) ready += r.ready() ? 1 : 0;
        return ready >= 9;
      },
      20s);
  signal_all({pids[0]}, SIGCONT);
  CHECK(taken);
  pool.join();
  int on_free_worker = 0;
  for (auto& r : results) on_free_worker += r.get() == pids[1] ? 1 : 0;
  CHECK(on_free_worker >= 9);
}
