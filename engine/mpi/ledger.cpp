#include "engine/mpi/ledger.hpp"

namespace procpool::mpi::detail {

void Ledger::opened() {
  std::lock_guard lock(mutex_);
  ++open_;
}

void Ledger::closed() noexcept {
  std::lock_guard lock(mutex_);
  if (--open_ == 0) empty_.notify_all();
}

void Ledger::wait_until_empty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [&] { return open_ == 0; });
}

}  // namespace procpool::mpi::detail
