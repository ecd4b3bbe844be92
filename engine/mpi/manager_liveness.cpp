// The manager's watch over its worker ranks while they have tasks out: a rank
// on rank 0's host is checked by its pid; one on another host by heartbeats
// (heartbeat.hpp), as nothing else tells a dead node from a slow one.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "engine/mpi/manager.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// How often rank 0 looks whether a worker on its own host still exists (a
// rank that died under --enable-recovery says nothing).
constexpr auto liveness_period = std::chrono::milliseconds(100);
// How often it reads heartbeat answers and pings the silent: a bound on how
// late a loss is seen past the time-out.
constexpr auto heartbeat_period = std::chrono::milliseconds(10);

// An Open MPI parameter given to mpirun (it passes them to its ranks), or `otherwise`.
long mca_parameter(const char* name, long otherwise) {
  const char* value = std::getenv((std::string("OMPI_MCA_") + name).c_str());
  return value != nullptr ? std::strtol(value, nullptr, 10) : otherwise;
}

// Whether a process of this host is gone (a zombie counts as gone).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z';
}

}  // namespace

void Manager::check_lost_workers_locked(std::vector<Completion>& done) {
  const auto now = std::chrono::steady_clock::now();
  if (const auto gap = now - last_heartbeat_check_; gap >= heartbeat_period) {
    last_heartbeat_check_ = now;
    check_heartbeats_locked(now, gap, done);
  }
  if (now - last_liveness_check_ < liveness_period) return;
  last_liveness_check_ = now;
  for (Worker& w : workers_) {
    if (w.lost || w.inflight.empty() || !w.info.same_host || !process_gone(w.info.pid)) continue;
    // How it died is its launcher's to know (it reaps the rank), not ours:
    // signal 0 and exit status -1 say unknown (errors.hpp).
    lose_worker_locked(w,
                       std::make_exception_ptr(WorkerLost("procpool::mpi: worker rank " + std::to_string(w.info.rank) +
                                                              " (pid " + std::to_string(w.info.pid) + " on " +
                                                              w.info.host + ") died while running the task",
                                                          w.info.pid, 0, -1)),
                       true, done);
  }
}

void Manager::check_heartbeats_locked(std::chrono::steady_clock::time_point now,
                                      std::chrono::steady_clock::duration gap, std::vector<Completion>& done) {
  // Without a socket rank 0 hears no answer: silence would mean nothing.
  if (!heartbeat_.usable()) return;
  for (const int rank : heartbeat_.answered()) {
    if (rank >= 1 && rank <= workers()) workers_[static_cast<std::size_t>(rank - 1)].heard = now;
  }
  const auto ping_every = options_.heartbeat_timeout / 4;
  for (Worker& w : workers_) {
    // Rank 0 itself was held up since the last look (a slow MPI call, a
    // starved core): it neither pinged nor read, so the ranks' silence over
    // that gap says nothing of them. They get a fresh ping and most of a time-out.
    if (gap > ping_every) w.heard = std::max(w.heard, now - ping_every);
    if (w.lost || w.inflight.empty() || w.info.same_host || w.info.heartbeat.port == 0) continue;
    // Silent since its last answer, result, or the first task sent to it after it was idle.
    const auto silent = now - std::max(w.heard, w.busy_since);
    if (silent > options_.heartbeat_timeout) {
      lose_node_locked(w, silent, done);
    } else if (silent >= ping_every && now - w.pinged >= ping_every) {
      heartbeat_.ping(w.info.rank, w.info.heartbeat);
      w.pinged = now;
    }
  }
}

void Manager::lose_node_locked(Worker& w, std::chrono::steady_clock::duration silent, std::vector<Completion>& done) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
  const std::string what = "procpool::mpi: worker rank " + std::to_string(w.info.rank) + " on host " + w.info.host +
                           " (pid " + std::to_string(w.info.pid) + ") stopped answering for " + std::to_string(ms) +
                           " ms: its node is down or cut off";
  if (options_.recovery) {
    lose_worker_locked(w, std::make_exception_ptr(WorkerLost(what + "; the task was running there", w.info.pid, 0, -1)),
                       true, done, true);
    return;
  }
  // Open MPI's default ends the job when a rank is lost, but mpirun has not
  // seen this one (a silent node, not a closed connection), and whatever
  // ends the job before it has (MPI_Abort, rank 0 exiting or crashing) makes
  // Open MPI 4.1's mpirun wait for the lost node's daemon forever. So rank 0
  // stops here, holding the pool (its tasks neither finish nor fail), until
  // mpirun's TCP keepalive declares the node lost and it ends the job.
  const long bound = mca_parameter("oob_tcp_keepalive_time", 300) +
                     mca_parameter("oob_tcp_keepalive_intvl", 20) * mca_parameter("oob_tcp_keepalive_probes", 9);
  std::fprintf(stderr,
               "%s. Without mpirun --enable-recovery the job ends: rank 0 stops and waits for mpirun to end it, "
               "within about %ld s (mpirun's oob_tcp_keepalive_time + oob_tcp_keepalive_intvl * "
               "oob_tcp_keepalive_probes).\n",
               what.c_str(), bound);
  std::fflush(stderr);
  for (;;) ::pause();
}

void Manager::lose_worker_locked(Worker& worker, const std::exception_ptr& error, bool retry,
                                 std::vector<Completion>& done, bool requeue_unstarted) {
  worker.lost = true;
  // The rank runs its messages in order: the first one not answered is the
  // one it was running (some of its tasks may have finished, their results
  // lost with it); those after it had not started.
  const std::uint64_t running = worker.inflight.empty() ? 0 : worker.inflight.front().sent_in;
  for (Task& t : worker.inflight) {
    if (requeue_unstarted && t.sent_in != running && !t.abandoned && keeps_bytes(worker, t)) {
      requeue_locked(t, false);
    } else {
      lose_task_locked(t, error, retry, done);
    }
  }
  worker.inflight.clear();
  // Batch sends to it may never complete either: their bytes stay.
  for (BatchSend& b : worker.batches) {
    MPI_Request_free(&b.request);
    graveyard_batches_.push_back(std::move(b));
  }
  worker.batches.clear();
  // What was on its way from or to it may never arrive: the receives and
  // sends are let go, their bytes kept (MPI may still touch them).
  for (auto it = incoming_.begin(); it != incoming_.end();) {
    if (it->source != worker.info.rank) {
      ++it;
      continue;
    }
    for (MPI_Request& r : it->receives) MPI_Request_free(&r);
    if (!it->receives.empty()) graveyard_incoming_.push_back(std::move(*it));
    it = incoming_.erase(it);
  }
  for (auto it = draining_.begin(); it != draining_.end();) {
    if (it->sent_to != worker.info.rank) {
      ++it;
      continue;
    }
    bury_locked(*it);
    it = draining_.erase(it);
  }
  for (auto it = control_sends_.begin(); it != control_sends_.end();) {
    const auto next = std::next(it);
    if (it->rank == worker.info.rank) {
      MPI_Request_free(&it->request);
      graveyard_controls_.splice(graveyard_controls_.end(), control_sends_, it);
    }
    it = next;
  }
  if (std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.lost; })) {
    const auto none_left = std::make_exception_ptr(WorkerLost("procpool::mpi: every worker rank is gone"));
    for (Task& t : backlog_.take_all()) fail_later(t, none_left, done);
  }
}

}  // namespace procpool::mpi::detail
