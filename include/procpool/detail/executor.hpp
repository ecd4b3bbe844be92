// What a pool's front end (TaskPool) needs from the engine behind it: the
// shared-memory pool on one machine, or the MPI pool across hosts.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/map_state.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/task_options.hpp"

namespace procpool::detail {

class Executor : public std::enable_shared_from_this<Executor> {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;

  // The pool's name in error texts: "procpool::Pool", "procpool::mpi::Pool".
  virtual const char* display_name() const noexcept = 0;
  // Queues one task under `options`: `encode` writes its payload; `state`
  // receives the outcome. Throws ValueError, naming `call`, if the pool no
  // longer takes tasks (BrokenPool if it cannot run them).
  virtual void submit(const char* call, std::shared_ptr<ResultStateBase> state,
                      FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) = 0;
  // Throws ValueError, naming `call`, unless the pool takes tasks.
  virtual void check_running(const char* call) const = 0;
  // A task whose arguments are not ready (an AsyncResult argument) is
  // deferred from apply_async until it is submitted with submit_deferred()
  // or dropped, then undefer(): meanwhile close() still lets it be queued
  // and join() waits for it. defer() throws as submit() would.
  virtual void defer(const char* call) = 0;
  virtual void submit_deferred(const char* call, std::shared_ptr<ResultStateBase> state,
                               FunctionRef<void(OutputBuffer&)> encode, const TaskOptions& options) = 0;
  virtual void undefer() noexcept = 0;
  // close() asks `flusher` to submit the rest of its input first. Thread-safe.
  void register_flusher(std::weak_ptr<InputFlusher> flusher);
  // Throws ValueError, naming `call`, unless the pool takes tasks and can
  // pass shared data (Shared<T>) to them. By default it cannot.
  virtual void check_shares(const char* call) const;
  // The number of workers tasks are spread over (for chunk sizes).
  virtual int processes() const noexcept = 0;

  virtual void close() = 0;
  virtual void join() = 0;
  virtual void terminate() = 0;
  // Called when the front end goes away: close (if running) and join, never throwing.
  virtual void finish() noexcept = 0;
  virtual int size() const = 0;

  // Lets threads waiting on `state` pump this pool's results.
  void attach(ResultStateBase& state) const noexcept;

 protected:
  // Names the part of the backend waiters pump, once a shared_ptr owns it.
  void set_result_source(std::weak_ptr<ResultSource> source) noexcept { result_source_ = std::move(source); }
  const std::weak_ptr<ResultSource>& result_source() const noexcept { return result_source_; }
  // Runs `encode` into `out`. If it throws a standard exception, fails
  // `state` with it as a SerializationError (naming the pool and `call`) and
  // returns false.
  bool serialize_or_fail(const char* call, ResultStateBase& state, FunctionRef<void(OutputBuffer&)> encode,
                         OutputBuffer& out) const;
  // For close(): a lazy imap still holding input hands all of it over now, as
  // Python's imap (which reads its input eagerly) would already have done.
  void flush_inputs() noexcept;

 private:
  std::weak_ptr<ResultSource> result_source_;
  std::mutex flushers_mutex_;
  std::vector<std::weak_ptr<InputFlusher>> flushers_;  // live imaps
};

}  // namespace procpool::detail
