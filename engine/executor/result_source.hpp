// The engine's side of result states: the pool a waiter may pump, and the
// callbacks a thread that drains results collects instead of running.
#pragma once

#include <exception>
#include <functional>
#include <vector>

#include "procpool/detail/result_state.hpp"

namespace procpool::detail {

// Where results come from: a thread waiting for one may pump it (drain the
// pool's result rings itself) instead of waiting for the result thread to
// wake it up, which saves a hand-off between threads on every round trip.
class ResultSource {
 public:
  // Takes whatever results are ready, if no other thread is doing so now.
  // Returns whether it took any. Never blocks.
  virtual bool pump() noexcept = 0;
  // Brackets a stretch of pumping: workers skip waking the result thread
  // while someone pumps.
  virtual void begin_pumping() noexcept = 0;
  virtual void end_pumping() noexcept = 0;
  // AsyncResult::cancel() of a task of this pool (state.task_id()): keeps it
  // from starting, or asks it to stop; fails `state` with Cancelled and
  // returns true, or returns false if it had already finished. Thread-safe;
  // called with no pool lock held.
  virtual bool cancel(ResultStateBase& state) = 0;
  // As cancel(), but a task that has started is left alone (returns false).
  // By default nothing is cancelled.
  virtual bool cancel_unstarted(ResultStateBase& /*state*/) { return false; }

 protected:
  ~ResultSource() = default;
};

// The error of a result that cancel() ended, the same from every pool.
std::exception_ptr cancelled_error();

// While a thread drains results, the callbacks of the results it completes
// are collected here instead of run, so they run on the result thread only.
extern thread_local std::vector<std::function<void()>>* deferred_callbacks;
// Runs callbacks, reporting (on stderr) and swallowing what they throw.
void run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept;

}  // namespace procpool::detail
