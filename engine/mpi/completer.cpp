#include "engine/mpi/completer.hpp"

#include "engine/executor/payload.hpp"
#include "engine/executor/pending_limit.hpp"
#include "engine/executor/result_source.hpp"

namespace procpool::mpi::detail {

using procpool::detail::complete_from_result;
using procpool::detail::deferred_callbacks;
using procpool::detail::InputBuffer;
using procpool::detail::run_callbacks;

Completer::Completer() : thread_([this] { callback_loop(); }) {}

Completer::~Completer() { stop(); }

void Completer::finish(std::vector<Completion>& done) noexcept {
  std::vector<std::function<void()>> callbacks;
  deferred_callbacks = &callbacks;
  for (Completion& c : done) {
    if (c.error) {
      c.state->fail(c.error);
    } else {
      complete_from_result(*c.state, [&] { return InputBuffer(c.bytes.data() + c.offset, c.size); }, c.pid);
    }
    c.ledger->closed();
  }
  deferred_callbacks = nullptr;
  if (callbacks.empty()) return;
  std::lock_guard lock(mutex_);
  for (auto& callback : callbacks) callbacks_.push_back(std::move(callback));
  ready_.notify_one();
}

void Completer::stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    ready_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void Completer::callback_loop() {
  // As a local pool's result thread: a callback that submits to a pool with
  // a max_pending never waits for a place (see PendingLimit).
  const procpool::detail::PendingLimit::ExemptScope exempt;
  std::unique_lock lock(mutex_);
  for (;;) {
    ready_.wait(lock, [&] { return stop_ || !callbacks_.empty(); });
    if (callbacks_.empty()) return;
    std::vector<std::function<void()>> batch;
    batch.swap(callbacks_);
    lock.unlock();
    run_callbacks(batch);
    lock.lock();
  }
}

}  // namespace procpool::mpi::detail
