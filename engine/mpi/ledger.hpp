// The tasks of one MPI pool that have not finished yet, counted so that
// join() can wait for them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace procpool::mpi::detail {

class Ledger {
 public:
  // A task was submitted. Thread-safe.
  void opened();
  // A task's state was completed or failed. Thread-safe, never throws.
  void closed() noexcept;
  // Blocks until every opened task is closed. Thread-safe.
  void wait_until_empty();

 private:
  std::mutex mutex_;
  std::condition_variable empty_;
  std::size_t open_ = 0;
};

}  // namespace procpool::mpi::detail
