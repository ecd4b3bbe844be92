/// \file
/// procpool::Process: one child process running a callable, Python's
/// multiprocessing.Process for C++; and what a process knows about itself.
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include "procpool/errors.hpp"

namespace procpool {

/// A process as procpool names it.
struct ProcessInfo {
  std::string name;  ///< "MainProcess", a Process's name, or "PoolWorker-N"
  pid_t pid;         ///< Its pid
  bool daemon;       ///< Whether it is a daemon (pool workers are)
};

/// The caller: "MainProcess" in a program's first process, the Process's name
/// in a child started by Process, "PoolWorker-N" in a pool worker. `pid` is
/// always getpid(). Never blocks. Thread-safe.
ProcessInfo current_process();

/// The process that started the caller through procpool (for a pool worker:
/// the process that built the pool); nullopt in the main process. Never
/// blocks. Thread-safe.
std::optional<ProcessInfo> parent_process();

/// The pids of the live children this process started with Process. Reaps
/// the ones that have ended (their Process still reports the exit code), so
/// no zombie is left. Never blocks. Thread-safe.
std::vector<pid_t> active_children();

namespace detail {
struct ChildRecord;
}

/// A child process running a callable, as Python's multiprocessing.Process.
///
/// \code
/// procpool::Process p([](int n) { std::printf("hello %d\n", n); }, 42);
/// p.start();
/// p.join();
/// assert(p.exitcode() == 0);
/// \endcode
///
/// The child is a fork of the caller: it sees the program's memory as it was
/// at start(), so any callable works, capturing lambdas included (unlike Pool
/// tasks, nothing is serialized). In the child, run() returning exits with 0,
/// an exception escaping it prints `Process <name>:` and the error to stderr
/// and exits with 1, and std::exit(n) exits with n. The child leaves with
/// _exit, so the parent's atexit handlers and static destructors never run
/// twice.
///
/// A daemon child dies with its parent, however the parent ends (SIGKILL
/// included). A daemon cannot start children of its own (as in Python: they
/// would be orphaned when it is killed).
///
/// Only the process that called start() may wait for, query or signal the
/// child (elsewhere those calls throw ValueError).
///
/// Thread-safety: once start() has returned, join(), is_alive(), terminate(),
/// kill(), pid(), exitcode() and sentinel() may be called from several threads
/// at once. start(), close(), set_name() and set_daemon() must not run
/// concurrently with another call on the same object. A started child is tied
/// to this object, which can therefore be neither copied nor moved.
class Process {
 public:
  /// For subclasses that override run(). The default name is "Process-N",
  /// N counting the Processes this process has made ("Process-1:N" in the
  /// child named "Process-1", as in Python). Never blocks.
  Process();

  /// A process that calls target(args...) in the child. The callable and
  /// decayed copies of the arguments are kept in this object; the child works
  /// on its own fork of them. Never blocks.
  template <class F, class... Args>
    requires std::invocable<F&, Args&...>
  explicit Process(F target, Args... args) : Process() {
    target_ = [target = std::move(target), ... args = std::move(args)]() mutable { std::invoke(target, args...); };
  }

  /// Not copyable: a started child is tied to this object.
  Process(const Process&) = delete;
  /// Not copyable: a started child is tied to this object.
  Process& operator=(const Process&) = delete;
  /// Not movable: a started child is tied to this object.
  Process(Process&&) = delete;
  /// Not movable: a started child is tied to this object.
  Process& operator=(Process&&) = delete;

  /// A started non-daemon child is joined (blocks until it exits); a daemon
  /// one is killed with SIGKILL and reaped. Never throws; never leaves a zombie.
  virtual ~Process();

  /// What the child runs. Default: target(args...), or nothing without a
  /// target. Override it in a subclass to give the child its work. start()
  /// calls it in the child, where it may block and throw as it likes (see
  /// the exit codes above).
  virtual void run();

  /// Forks the child, which calls run() and exits. Returns once the child
  /// exists; does not wait for it. Buffered stdio is flushed first so it is
  /// not written twice. Throws ValueError if already started, if closed, or
  /// if the caller is a daemon process; Error if the fork fails. Must not run
  /// concurrently with another call on this object.
  void start();

  /// Blocks until the child has exited, and reaps it. Returns at once if it
  /// already has. Throws ValueError if not started, or closed. Thread-safe
  /// once started.
  void join();

  /// As join(), but waits at most `timeout` (without spinning). Returns
  /// whether the child has exited (and then it is reaped). Throws as join().
  /// Thread-safe once started.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    using Nanoseconds = std::chrono::nanoseconds;
    if (timeout <= timeout.zero()) return join_for(Nanoseconds::zero());
    if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(Nanoseconds::max())) {
      return join_for(Nanoseconds::max());
    }
    return join_for(std::chrono::ceil<Nanoseconds>(timeout));
  }

  /// Whether the child is running: false before start() and once it has
  /// exited (it is reaped then, so no zombie outlives this call). Never
  /// blocks. Throws ValueError if closed. Thread-safe once started.
  bool is_alive() const;

  /// Sends SIGTERM to the child; nothing if it has already exited. Never
  /// blocks. Throws ValueError if not started, or closed. Thread-safe once
  /// started.
  void terminate();

  /// Sends SIGKILL to the child; nothing if it has already exited. Never
  /// blocks. Throws ValueError if not started, or closed. Thread-safe once
  /// started.
  void kill();

  /// Releases the sentinel. Afterwards every call but name(), set_name(),
  /// daemon() and close() throws ValueError. Throws ValueError if the child
  /// is still running. Never blocks. Closing twice does nothing. Must not run
  /// concurrently with another call on this object.
  void close();

  /// The child's pid; nullopt before start(). Never blocks. Throws ValueError
  /// if closed. Thread-safe once started.
  std::optional<pid_t> pid() const;

  /// nullopt before start() and while the child runs; then its exit status,
  /// or -N if a signal N ended it. Reaps the child if it has exited. Never
  /// blocks. Throws ValueError if closed. Thread-safe once started.
  std::optional<int> exitcode() const;

  /// "Process-1", "Process-2", ... unless set_name() said otherwise. Never
  /// blocks or throws; must not run concurrently with set_name().
  const std::string& name() const noexcept { return name_; }
  /// Renames the process; a started child keeps the name it had at start().
  /// Never blocks. Must not run concurrently with another call on this object.
  void set_name(std::string name) { name_ = std::move(name); }

  /// Whether the child is a daemon (false unless set_daemon(true)). Never
  /// blocks or throws; must not run concurrently with set_daemon().
  bool daemon() const noexcept { return daemon_; }
  /// Makes the child a daemon, which is killed when this object is destroyed
  /// or its parent dies. Never blocks. Throws ValueError after start() or
  /// close(). Must not run concurrently with another call on this object.
  void set_daemon(bool daemon);

  /// A pollable fd (a pidfd), readable once the child has exited; owned by
  /// this object until close(). Never blocks. Throws ValueError before
  /// start(), or if closed. Thread-safe once started.
  int sentinel() const;

 private:
  bool join_for(std::chrono::nanoseconds timeout);
  bool wait_until_ended(std::optional<std::chrono::steady_clock::time_point> deadline) const noexcept;
  void check_open(const char* call) const;
  void check_started(const char* call) const;
  [[noreturn]] void run_child(const ProcessInfo& parent) noexcept;

  std::function<void()> target_;
  std::string identity_;  // "3", or "1:3" in the child "Process-1": the default name's number
  std::string name_;
  bool daemon_ = false;
  bool closed_ = false;
  pid_t pid_ = 0;    // 0 before start()
  pid_t owner_ = 0;  // the process that called start(): only it may wait for the child
  int pidfd_ = -1;
  std::shared_ptr<detail::ChildRecord> record_;  // shared with the registry of children
};

}  // namespace procpool
