#include "engine/process/current_process.hpp"

#include <cerrno>
#include <csignal>
#include <map>
#include <mutex>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace procpool {

namespace detail {

namespace {

struct State {
  std::mutex mutex;
  std::string name = "MainProcess";
  bool daemon = false;
  std::optional<ProcessInfo> parent;
  std::string identity;  // empty in the main process
  int children_made = 0;
  std::map<pid_t, std::shared_ptr<ChildRecord>> live;  // started, not yet reaped
};

State& state() {
  // Leaked on purpose: usable from static destructors and atfork handlers.
  // The lock is held across every fork, so a child never inherits it taken.
  static State* const instance = [] {
    auto* created = new State;
    ::pthread_atfork([] { state().mutex.lock(); }, [] { state().mutex.unlock(); },
                     [] { state().mutex.unlock(); });
    return created;
  }();
  return *instance;
}

// With the lock held: reaps the child if it has exited.
void reap_locked(State& s, ChildRecord& record) noexcept {
  if (record.ended) return;
  int status = 0;
  pid_t got;
  do {
    got = ::waitpid(record.pid, &status, WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return;
  record.ended = true;
  if (got == record.pid) {
    if (WIFEXITED(status)) record.exitcode = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) record.exitcode = -WTERMSIG(status);
  }
  // ECHILD: collected elsewhere (SIGCHLD ignored, a stray waitpid(-1)); the status is lost.
  s.live.erase(record.pid);
}

}  // namespace

void become_child(ProcessInfo self, ProcessInfo parent, std::string identity) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.name = std::move(self.name);
  s.daemon = self.daemon;
  s.parent = std::move(parent);
  s.identity = std::move(identity);
  s.children_made = 0;
  s.live.clear();
}

std::string next_child_identity() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  const std::string number = std::to_string(++s.children_made);
  return s.identity.empty() ? number : s.identity + ":" + number;
}

std::shared_ptr<ChildRecord> register_child(pid_t pid) {
  auto record = std::make_shared<ChildRecord>(pid);
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.live[pid] = record;
  return record;
}

ChildStatus poll_child(ChildRecord& record) noexcept {
  State& s = state();
  std::lock_guard lock(s.mutex);
  reap_locked(s, record);
  return {record.ended, record.exitcode};
}

void signal_child(ChildRecord& record, int signal) noexcept {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (!record.ended) ::kill(record.pid, signal);
}

}  // namespace detail

ProcessInfo current_process() {
  detail::State& s = detail::state();
  std::lock_guard lock(s.mutex);
  return {s.name, ::getpid(), s.daemon};
}

std::optional<ProcessInfo> parent_process() {
  detail::State& s = detail::state();
  std::lock_guard lock(s.mutex);
  return s.parent;
}

std::vector<pid_t> active_children() {
  detail::State& s = detail::state();
  std::lock_guard lock(s.mutex);
  std::vector<std::shared_ptr<detail::ChildRecord>> records;
  records.reserve(s.live.size());
  for (const auto& [pid, record] : s.live) records.push_back(record);
  std::vector<pid_t> pids;
  for (const auto& record : records) {
    detail::reap_locked(s, *record);
    if (!record->ended) pids.push_back(record->pid);
  }
  return pids;
}

}  // namespace procpool
