// The last step of an MPI task on rank 0: the manager thread hands finished
// tasks here, outside its lock; their states are completed on that thread and
// their callbacks run on a thread of the Completer's own.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "engine/mpi/ledger.hpp"
#include "procpool/detail/result_state.hpp"

namespace procpool::mpi::detail {

// A finished task: its error, or the bytes of its result at [offset, offset + size).
struct Completion {
  std::shared_ptr<procpool::detail::ResultStateBase> state;
  std::shared_ptr<Ledger> ledger;
  std::exception_ptr error;
  std::vector<char> bytes;
  std::size_t offset = 0;
  std::size_t size = 0;
  pid_t pid = 0;
};

class Completer {
 public:
  // Starts the callback thread.
  Completer();
  Completer(const Completer&) = delete;
  Completer& operator=(const Completer&) = delete;
  ~Completer();

  // Completes (or fails) each state and closes it in its ledger, on the
  // calling thread; queues the callbacks that this releases. Never throws.
  void finish(std::vector<Completion>& done) noexcept;
  // Runs the callbacks still queued, then ends the callback thread. Idempotent;
  // call it from one thread only, never from a callback.
  void stop() noexcept;

 private:
  void callback_loop();

  // Result callbacks run here, never on the manager thread: one that waits on
  // another result must not hold up the thread that delivers it.
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<std::function<void()>> callbacks_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace procpool::mpi::detail
