// Who this process is, as procpool sees it: its name, its parent, and the
// children it started with Process (a registry that reaps them). All of it is
// per process: a forked child takes on its own identity with become_child().
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>

#include "procpool/process.hpp"

namespace procpool::detail {

// Makes a freshly forked child `self` (self.pid is ignored: current_process()
// always reports getpid()), started by `parent`. Forgets the parent's
// children and restarts the numbering of its own, whose default names become
// "Process-<identity>:1", ... ("Process-1", ... with an empty identity).
// Call it in the child right after fork, before it starts threads. A pool
// worker, with `creator` = current_process() taken before forking:
//   detail::become_child({"PoolWorker-" + std::to_string(n), 0, true}, creator);
void become_child(ProcessInfo self, ProcessInfo parent, std::string identity = {});

// Numbers the next Process made in this process: "4", or "1:4" in the child
// whose identity is "1". Thread-safe.
std::string next_child_identity();

// The fate of one child started by Process, shared by its Process object and
// the registry; whoever reaps the child records its status here. The fields
// are guarded by the registry's lock: read them through poll_child().
struct ChildRecord {
  explicit ChildRecord(pid_t child) : pid(child) {}
  const pid_t pid;
  bool ended = false;
  std::optional<int> exitcode;  // n, or -N for signal N; nullopt if reaped behind procpool's back
};

struct ChildStatus {
  bool ended;
  std::optional<int> exitcode;
};

// Adds a forked (not yet reaped) child to the registry. Throws std::bad_alloc.
std::shared_ptr<ChildRecord> register_child(pid_t pid);

// Reaps the child if it has exited (never blocks), and says how it stands.
// Thread-safe, with active_children() too: a child is reaped exactly once.
ChildStatus poll_child(ChildRecord& record) noexcept;

// Sends `signal` to the child unless it has been reaped (its pid could belong
// to another process by then). Thread-safe.
void signal_child(ChildRecord& record, int signal) noexcept;

}  // namespace procpool::detail
