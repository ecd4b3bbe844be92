/// \file
/// The one error model of procpool: every error it throws derives from Error.
#pragma once

#include <stdexcept>
#include <string>
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
class WorkerLost : public Error {
 public:
  using Error::Error;
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
