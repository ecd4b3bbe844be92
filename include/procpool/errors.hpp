/// \file
/// The one error model of procpool: every error it throws derives from Error.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <sys/types.h>

namespace procpool {

/// The base of every procpool error. Messages name the call that failed, as
/// in "procpool::Pool::apply_async: pool is closed". Also thrown as itself
/// when the system fails procpool (a fork that fails, for one).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Misuse, as Python's ValueError: a pool that is not running, Pool(0),
/// join() before close()/terminate(), successful() before ready, ...
class ValueError : public Error {
 public:
  using Error::Error;
};

/// AsyncResult::get(timeout) or IMapIterator::next(timeout) expired. The
/// task itself goes on.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// A task threw something that is not re-created as its own type (anything
/// but the standard exceptions listed in the README). what() is its message.
class RemoteError : public Error {
 public:
  /// The error for a task that threw a `type_name` with `message` in the
  /// worker `worker_pid`. Throws only std::bad_alloc.
  RemoteError(std::string type_name, const std::string& message, pid_t worker_pid)
      : Error(message), type_name_(std::move(type_name)), worker_pid_(worker_pid) {}

  /// The demangled type of what the task threw: "my::ParseError", or "int".
  /// Never throws.
  const std::string& type_name() const noexcept { return type_name_; }
  /// The pid of the worker the task ran in. Never throws.
  pid_t worker_pid() const noexcept { return worker_pid_; }

 private:
  std::string type_name_;
  pid_t worker_pid_;
};

/// The worker died (signal, _exit, crash) while running the task. what() names
/// the pid and the signal or exit status. The pool replaces the worker.
///
/// Its members say how the worker ended. On a local Pool, all of them are
/// known; on an mpi::Pool, rank 0 learns only that a rank is gone: pid() is
/// the rank's pid, signal() 0, exit_status() -1, backtrace() empty. A
/// WorkerLost built from a message alone (the zygote's death, a user's own)
/// has pid() 0, signal() 0, exit_status() -1 and no backtrace.
///
/// Copying one never throws (the backtrace is shared between copies).
class WorkerLost : public Error {
 public:
  using Error::Error;

  /// How a worker `pid` ended: killed by `signal` (0 if it exited), or exited
  /// with `exit_status` (-1 if it was killed or the status is unknown), with
  /// the symbolized `backtrace` of its crash ("" if none). Throws only
  /// std::bad_alloc.
  WorkerLost(const std::string& message, pid_t pid, int signal, int exit_status, std::string backtrace = {})
      : Error(message),
        pid_(pid),
        signal_(signal),
        exit_status_(exit_status),
        backtrace_(backtrace.empty() ? nullptr : std::make_shared<const std::string>(std::move(backtrace))) {}

  /// The pid of the worker that died (0 if unknown). Never throws.
  pid_t pid() const noexcept { return pid_; }
  /// The signal that killed the worker: SIGSEGV, SIGKILL, ... 0 if it exited
  /// (or it is unknown). Never throws.
  int signal() const noexcept { return signal_; }
  /// The status the worker exited with (`_exit(3)`: 3) when signal() is 0;
  /// -1 if it was killed by a signal or the status is unknown. Never throws.
  int exit_status() const noexcept { return exit_status_; }
  /// For a worker killed by SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, the
  /// stack of the thread that crashed, innermost first, one frame a line:
  /// "#0 0x55d3c0a1b2c4 parse(std::string const&) at /src/parse.cpp:42".
  /// Names come from the executable's and libraries' symbol tables (static
  /// functions included unless stripped), file:line from their DWARF (-g).
  /// Empty for any other death. Never throws; thread-safe (immutable).
  const std::string& backtrace() const noexcept { return backtrace_ ? *backtrace_ : empty_backtrace(); }

 private:
  static const std::string& empty_backtrace() noexcept {
    static const std::string empty;
    return empty;
  }

  pid_t pid_ = 0;
  int signal_ = 0;
  int exit_status_ = -1;
  std::shared_ptr<const std::string> backtrace_;
};

/// The task ran past PoolOptions::task_timeout; its worker was killed and replaced.
class TaskTimeout : public Error {
 public:
  using Error::Error;
};

/// An argument or result could not be serialized or deserialized at run time,
/// or a callable could not be resolved in the worker. All workers stay.
class SerializationError : public Error {
 public:
  using Error::Error;
};

/// TaskPool::terminate() ran before the task finished.
class PoolTerminated : public Error {
 public:
  using Error::Error;
};

/// AsyncResult::cancel() took effect before the task finished: the task never
/// ran, or it was asked to stop (and its worker killed if it did not).
class Cancelled : public Error {
 public:
  using Error::Error;
};

/// The pool can no longer run tasks: its workers cannot start (the
/// initializer keeps throwing, or no worker can be forked for a while).
/// what() says why. Every unfinished result fails with it, every later
/// submission throws it; close(), join() and the destructor still return.
class BrokenPool : public Error {
 public:
  using Error::Error;
};

}  // namespace procpool
