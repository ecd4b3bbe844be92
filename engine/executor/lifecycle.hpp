// The lifecycle both pools share: the phase (running, then closing or
// terminated), the misuse errors that name the pool, and the order of the
// steps of close(), join(), terminate() and the front end's finish(). A
// backend adds only its own steps (LifecycleSteps).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <string>

namespace procpool::detail {

// What a backend does at each point of the shared sequence.
class LifecycleSteps {
 public:
  // close() and finish(), before the pool stops taking tasks, outside the lock.
  virtual void before_closing() noexcept {}
  // The pool stopped taking tasks and runs what is queued (outside the lock).
  virtual void closing() noexcept {}
  // terminate() takes this lock before the phase lock (may be empty), for a
  // backend whose take_unfinished_locked() must exclude a thread holding it.
  virtual std::unique_lock<std::mutex> lock_before_terminating() { return {}; }
  // terminate(), under the phase lock, as the phase becomes terminated: take
  // every unfinished task out of the queues.
  virtual void take_unfinished_locked() {}
  // terminate(), outside the lock: stop the workers now and fail the taken
  // tasks with `error` (PoolTerminated). Must not wait for a running task.
  virtual void stop_now(const std::exception_ptr& error) noexcept = 0;
  // join(), once: wait until the workers have left and the pool's threads
  // have stopped.
  virtual void wait_stopped() noexcept = 0;
  // The last deferred task of a closing pool was queued or dropped: the
  // workers may now be told to stop once the queue is empty.
  virtual void deferred_done() noexcept {}

 protected:
  ~LifecycleSteps() = default;
};

class Lifecycle {
 public:
  enum class Phase { running, closing, terminated };

  // `display_name` ("procpool::Pool") starts every error text.
  Lifecycle(const char* display_name, LifecycleSteps& steps) noexcept : name_(display_name), steps_(steps) {}
  Lifecycle(const Lifecycle&) = delete;
  Lifecycle& operator=(const Lifecycle&) = delete;

  const char* display_name() const noexcept { return name_; }

  // Guards the phase, and what a backend must change in the same step (the
  // local pool's slot table, the MPI pool's count of open tasks), so that a
  // task is queued only while the pool is running.
  std::mutex& mutex() const noexcept { return mutex_; }
  Phase phase_locked() const noexcept { return phase_; }
  // A look without the lock: false once the pool stopped taking tasks.
  bool accepting() const noexcept { return !stopped_taking_; }

  // Throw ValueError naming `call` unless the pool is running (BrokenPool
  // once it is broken).
  void check_running(const char* call) const;
  void check_running_locked(const char* call) const;

  // A task submitted while the pool runs but queued only once its arguments
  // are ready (an AsyncResult argument) is deferred: until undefer(), a
  // closing pool still queues it and does not stop its workers, and join()
  // waits for it. defer() throws as check_running() does.
  void defer(const char* call);
  void undefer() noexcept;
  std::size_t deferred_locked() const noexcept { return deferred_; }
  // Blocks until no task is deferred, or the pool is terminated.
  void wait_deferred();
  // As check_running_locked(), but a deferred task may still be queued after close().
  void check_queueing_locked(const char* call, bool deferred) const;

  // Python's semantics: close() and a running pool's finish() let the queue
  // drain; terminate() also works after close() (a pool stuck behind a hung
  // task), a second terminate() does nothing; join() throws while running.
  // On a broken pool close() does nothing and terminate() only joins.
  void close();
  void join();
  void terminate();
  void finish() noexcept;
  // Terminates a running pool with `error`, as terminate() but without
  // joining; returns false (and does nothing) unless it was running.
  bool terminate_if_running(const std::exception_ptr& error);
  // The backend stops taking tasks itself (it cannot run them any more): a
  // running pool becomes closed, without close()'s steps.
  void close_locked() noexcept;
  // The backend can run no task any more (its workers cannot start): as
  // terminate_if_running() with BrokenPool, in the running or closing phase;
  // from then on check_running() throws BrokenPool naming `why`. The caller
  // holds lock_before_terminating()'s lock. Returns false (and does nothing)
  // if the pool was terminated already.
  bool break_pool(const std::string& why);

 private:
  // "<name>::<call>: <what>"
  std::string message(const char* call, const char* what) const;
  void set_phase_locked(Phase phase) noexcept;
  // terminate()'s first steps; false if it had nothing to do.
  bool stop_now(const std::exception_ptr& error, bool only_if_running);
  // Under lock_before_terminating()'s lock: the phase becomes terminated
  // (broken, with `broken`) and the backend takes the unfinished tasks.
  bool take_unfinished(bool only_if_running, const std::string* broken);
  bool broken() const;

  const char* const name_;
  LifecycleSteps& steps_;
  mutable std::mutex mutex_;  // see mutex(); taken after lock_before_terminating()
  Phase phase_ = Phase::running;
  // phase_ != running, for a look without the lock; written under mutex_.
  std::atomic<bool> stopped_taking_{false};
  std::string broken_;  // why the pool is broken ("": it is not); under mutex_
  std::size_t deferred_ = 0;  // see defer(); under mutex_
  std::condition_variable deferred_changed_;
  // Held while wait_stopped() runs, so it runs once; taken after no other lock.
  std::mutex join_mutex_;
  bool joined_ = false;
};

}  // namespace procpool::detail
