#include "engine/pool/result_drainer.hpp"

#include <array>
#include <csignal>
#include <optional>
#include <utility>

#include "engine/executor/pending_limit.hpp"
#include "engine/ipc/side_channel.hpp"
#include "engine/pool/pool_watch.hpp"
#include "engine/executor/payload.hpp"
#include "engine/pool/worker.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// How long the result thread polls before it sleeps.
constexpr std::chrono::microseconds result_spin{10};
// Result frames handled in one go per worker before looking at the others.
constexpr int drain_batch = 256;

}  // namespace

void ResultDrainer::start(Zygote& zygote, std::function<bool()> handle_events) {
  zygote_ = &zygote;
  handle_events_ = std::move(handle_events);
  thread_ = std::thread([this] { loop(); });
  thread_id_ = thread_.get_id();
}

void ResultDrainer::join_thread() noexcept {
  signal();
  if (thread_.joinable()) thread_.join();
}

void ResultDrainer::stop() noexcept {
  pumping_open_.store(false, std::memory_order_release);
  join_thread();
}

void ResultDrainer::signal() noexcept {
  signals_.fetch_add(1, std::memory_order_release);
  region_.pool().parent_bell.ring_always();
}

void ResultDrainer::loop() {
  // Callbacks run here: a submission from one must not wait for a place
  // that only this thread could free (PoolOptions::max_pending).
  const PendingLimit::ExemptScope exempt;
  auto& room_freed = region_.pool().tasks_room_freed;
  std::uint32_t seen_signals = signals_.load(std::memory_order_acquire);
  std::uint32_t seen_room = room_freed.load(std::memory_order_acquire);
  for (;;) {
    std::vector<std::function<void()>> callbacks;
    bool progressed = false;
    bool done = false;
    {
      std::lock_guard drain(drain_mutex_);
      deferred_callbacks = &callbacks;
      progressed = handle_events_();
      progressed |= drain_all(true);
      {
        std::lock_guard lock(lifecycle_.mutex());
        const Lifecycle::Phase phase = lifecycle_.phase_locked();
        done = phase == Lifecycle::Phase::terminated ||
               (phase == Lifecycle::Phase::closing && table_.all_exited_locked());
      }
      deferred_callbacks = nullptr;
    }
    {
      std::lock_guard lock(callbacks_mutex_);
      for (auto& c : pumped_callbacks_) callbacks.push_back(std::move(c));
      pumped_callbacks_.clear();
    }
    // Outside every lock: a callback may submit tasks or wait on results.
    run_callbacks(callbacks);
    if (done) return;
    if (progressed || !callbacks.empty()) continue;
    // While a waiter pumps, the results are its to take: spinning here too
    // would only take a core from it or from a worker. (Workers ring when no
    // one pumps; end_pumping() rings if results were left.)
    auto& pumpers = region_.pool().pumpers;
    const bool pumped = pumpers.load(std::memory_order_seq_cst) != 0;
    region_.pool().parent_bell.wait(
        [&] {
          // A worker that freed room without a result: a round dispatches the backlog.
          return signals_.load(std::memory_order_acquire) != seen_signals ||
                 room_freed.load(std::memory_order_seq_cst) != seen_room ||
                 (pumpers.load(std::memory_order_seq_cst) == 0 && any_results());
        },
        pumped ? std::chrono::microseconds(0) : result_spin);
    seen_signals = signals_.load(std::memory_order_acquire);
    seen_room = room_freed.load(std::memory_order_acquire);
  }
}

bool ResultDrainer::any_results() const noexcept {
  for (int i = 0; i < table_.size(); ++i) {
    if (!table_.slot(i).results.empty()) return true;
  }
  return false;
}

// Takes every ready result, then refills the rings from the backlog (always
// after `changed`, else only if results came in: nothing else frees room).
bool ResultDrainer::drain_all(bool changed) {
  bool progressed = false;
  for (int i = 0; i < table_.size(); ++i) progressed |= drain_results(i);
  if (!progressed && !changed) return false;
  std::lock_guard lock(lifecycle_.mutex());
  if (lifecycle_.phase_locked() == Lifecycle::Phase::terminated) return progressed;
  table_.dispatch_backlog_locked();
  table_.forget_released_blocks_locked();
  const bool closing = lifecycle_.phase_locked() == Lifecycle::Phase::closing;
  // Closing, an idle worker gets no stop while it could take a busy one's tasks.
  if (progressed || closing) table_.steal_for_idle_workers_locked();
  // A deferred task (waiting for its arguments) may still be queued.
  if (closing && table_.backlog_empty_locked() && lifecycle_.deferred_locked() == 0) {
    table_.send_stops_locked();
    finish_zygote_locked();
  }
  return progressed;
}

void ResultDrainer::finish_zygote_locked() noexcept {
  // Once every task is done and every worker told to stop, none will be
  // needed again (a worker that dies now leaves nothing to re-queue): the
  // zygote may exit with its last worker, sparing join() a round trip.
  if (zygote_finishing_ || table_.inflight_locked() != 0) return;
  for (int i = 0; i < table_.size(); ++i) {
    const WorkerSlot& s = table_.slot(i);
    const bool stopping = s.state == WorkerSlot::State::running && s.stop_sent;
    if (!stopping && s.state != WorkerSlot::State::exited) return;  // starting or retrying: not yet
  }
  zygote_finishing_ = true;
  zygote_->request({ZygoteRequest::Op::finish, 0, 0, 0});
}

bool ResultDrainer::pump() noexcept {
  if (!pumping_open_.load(std::memory_order_acquire) || !any_results()) return false;
  std::unique_lock drain(drain_mutex_, std::try_to_lock);
  if (!drain.owns_lock()) return false;
  std::vector<std::function<void()>> callbacks;
  deferred_callbacks = &callbacks;
  bool progressed = false;
  try {
    progressed = drain_all(false);
  } catch (...) {
    // Only a failing mutex could throw here; the result thread will retry.
  }
  deferred_callbacks = nullptr;
  drain.unlock();
  if (!callbacks.empty()) {
    {
      std::lock_guard lock(callbacks_mutex_);
      for (auto& c : callbacks) pumped_callbacks_.push_back(std::move(c));
    }
    signal();
  }
  return progressed;
}

bool ResultDrainer::cancel(ResultStateBase& state) {
  // The outcome first: from here no result can complete it, and a worker's
  // death fails it no more (nor retries it). Its callbacks run on this thread.
  if (!state.fail(cancelled_error())) {
    return false;
  }
  stats_.cancelled();
  bool closing = false;
  {
    // Both locks: a task in a ring leaves `inflight` from the middle.
    std::lock_guard drain(drain_mutex_);
    std::lock_guard lock(lifecycle_.mutex());
    const Lifecycle::Phase phase = lifecycle_.phase_locked();
    if (phase == Lifecycle::Phase::terminated) return true;
    closing = phase == Lifecycle::Phase::closing;
    // Read under the lock: the task cannot move between rings while we look.
    const std::uint64_t ref = state.task_id();
    const SlotTable::Cancel where = table_.cancel_locked(ref);
    if (where.where == SlotTable::Cancel::Where::running) watch_.watch_cancelled(ref & task_ref_id_mask);
    // Its place in the ring goes to the next task now, as a result would give it.
    if (where.where == SlotTable::Cancel::Where::ring) table_.dispatch_backlog_locked();
  }
  // The result thread need not wake per cancel (a map may cancel thousands),
  // only when the pool closes: the backlog may now be empty, and the workers due a stop.
  if (closing) signal();
  return true;
}

bool ResultDrainer::cancel_unstarted(ResultStateBase& state) {
  if (state.ready()) return false;
  std::vector<std::function<void()>> callbacks;
  bool cancelled = false;
  bool closing = false;
  {
    // Where the task is and its outcome are decided together, under the
    // pool mutex: no worker can be handed it meanwhile.
    std::lock_guard drain(drain_mutex_);
    std::lock_guard lock(lifecycle_.mutex());
    const Lifecycle::Phase phase = lifecycle_.phase_locked();
    if (phase == Lifecycle::Phase::terminated) return false;
    closing = phase == Lifecycle::Phase::closing;
    const SlotTable::Cancel where = table_.cancel_locked(state.task_id(), false);
    if (where.where == SlotTable::Cancel::Where::backlog || where.where == SlotTable::Cancel::Where::ring) {
      // Its callbacks are run below, with no lock held.
      auto* const outer = std::exchange(deferred_callbacks, &callbacks);
      cancelled = state.fail(cancelled_error());
      deferred_callbacks = outer;
      if (cancelled) stats_.cancelled();
    }
    if (where.where == SlotTable::Cancel::Where::ring) table_.dispatch_backlog_locked();
  }
  run_callbacks(callbacks);
  if (closing) signal();
  return cancelled;
}

void ResultDrainer::begin_pumping() noexcept { region_.pool().pumpers.fetch_add(1, std::memory_order_seq_cst); }

void ResultDrainer::end_pumping() noexcept {
  region_.pool().pumpers.fetch_sub(1, std::memory_order_seq_cst);
  // A result published while we counted as a pumper rang no bell: if one is
  // still waiting, make sure the result thread looks.
  if (any_results()) region_.pool().parent_bell.ring();
}

bool ResultDrainer::drain_results(int index) {
  WorkerSlot& slot = table_.slot(index);
  // Read a batch of ready frames first, complete their tasks, then hand the
  // space back to the worker in one store.
  std::array<FrameView, drain_batch> frames;
  std::size_t count = 0;
  std::uint64_t position = slot.results.head_position();
  Ring::Peek peek = Ring::Peek::empty;
  while (count < drain_batch && (peek = slot.results.peek_from(position, frames[count])) == Ring::Peek::frame) {
    position += frames[count++].span;
  }
  bool trusted = peek != Ring::Peek::corrupt;
  if (count == 0 && trusted) return false;
  // No pool lock: only this thread (holding drain_mutex_) pops `inflight`.
  std::size_t taken = 0;
  for (; taken < count; ++taken) {
    const FrameView& frame = frames[taken];
    if (frame.header.kind == FrameKind::timing) {
      // A timed task's times, right after its result.
      TimedTask timed;
      if (!stats_.timing(index, frame, timed)) {
        trusted = false;
        break;
      }
      if (trace_ != nullptr) trace_->task(timed.id, slot.pid, timed.submitted_ns, timed.started_ns, timed.ended_ns, false);
      continue;
    }
    if (frame.header.kind != FrameKind::result || slot.inflight.empty() ||
        slot.inflight.front().id != frame.header.task_id) {
      trusted = false;
      break;
    }
    slot.done.fetch_add(1, std::memory_order_relaxed);
    PoolTask task = std::move(slot.inflight.front());
    slot.inflight.pop_front();
    watch_.task_count_changed(-1);
    std::optional<SideChannelPayload> side;
    stats_.result(complete_from_result(
        *task.state, [&] { return open_payload(frame, slot.socket.get(), side, arenas_.results(index)); }, slot.pid));
    if (task.submitted_ns != 0) stats_.expect_timing(index, task.id, task.submitted_ns);
    // Read: the worker may reuse the block (only arena results are counted).
    if ((frame.header.flags & frame_arena) != 0) {
      region_.slot(index).arena_results_taken.fetch_add(1, std::memory_order_release);
    }
  }
  if (!trusted) {
    // The ring cannot be trusted past a bad frame: replace the worker; its
    // exit fails the task it was running and re-queues the rest.
    if (slot.state == WorkerSlot::State::running) zygote_->request({ZygoteRequest::Op::kill, index, slot.pid, SIGKILL});
    slot.results.reset();
  } else {
    slot.results.pop_to(position);
  }
  if (taken != 0) region_.slot(index).results_space_bell.ring();
  return taken != 0;
}

}  // namespace procpool::detail
