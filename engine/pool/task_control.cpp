// The slot table's part in a task's control: cancel() of a task in a ring,
// and the fate of a task whose worker died (retry, time-out, loss).
#include <string>
#include <sys/wait.h>

#include "engine/pool/pool_watch.hpp"
#include "engine/pool/slot_table.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

SlotTable::Cancel SlotTable::cancel_locked(std::uint64_t ref, bool stop_running) {
  const int at = static_cast<int>(ref >> task_ref_slot_shift) - 1;
  const std::uint64_t id = ref & task_ref_id_mask;
  // No slot: in the backlog (or not queued yet), where dispatch drops it.
  if (at < 0 || at >= size()) return {};
  // The slot is cleared only after its tasks are failed or re-queued (which resets the ref).
  if (slot(at).state != WorkerSlot::State::running) return {Cancel::Where::done, at};
  WorkerSlot& s = slot(at);
  FrameView frame{};
  for (std::uint64_t position = s.tasks.head_position(); s.tasks.peek_at(position, frame); position += frame.span) {
    if (frame.header.kind != FrameKind::task || frame.header.task_id != id) continue;
    if ((s.tasks.marks(frame) & frame_stolen) != 0) continue;  // an earlier trip through this ring
    if (!stop_running && (s.tasks.marks(frame) & frame_claimed) != 0) return {Cancel::Where::running, at};
    if (!s.tasks.try_mark(frame, frame_stolen)) {
      // Popped since we looked: finished, and a stop request now would name
      // it over the next task's (a soft time-out's, say).
      if (s.tasks.head_position() > position) return {Cancel::Where::done, at};
      if (!stop_running) return {Cancel::Where::running, at};
      // Claimed: it runs (or has just finished). Ask it to stop; the
      // request names the task, so it cannot stop the next one.
      SlotControl& shared = region_.slot(at);
      shared.stop_task.store(id, std::memory_order_release);
      shared.stop_bell.ring();
      return {Cancel::Where::running, at};
    }
    // Its worker will skip the frame, as it does a stolen one: out of
    // `inflight` too, which keeps the ring's order for the drainer. One turn
    // of the queue (both of its sides are ours), without allocating.
    bool dropped = false;
    for (std::size_t n = s.inflight.size(); n != 0; --n) {
      PoolTask task = std::move(s.inflight.front());
      s.inflight.pop_front();
      if (!dropped && task.id == id) {
        dropped = true;
      } else {
        s.inflight.push_back(std::move(task));
      }
    }
    if (dropped) watch_.task_count_changed(-1);
    return {Cancel::Where::ring, at};
  }
  return {Cancel::Where::done, at};  // its worker is done with it; the result is dropped when it comes
}

std::exception_ptr SlotTable::lost_task_locked(PoolTask& task, const WorkerDeath& death, const std::string& why,
                                               bool timed_out, const FrameView* frame) {
  if (task.state->ready()) return nullptr;  // cancelled: it has its outcome
  const int attempts = (task.options.retries > 0 ? task.options.retries : 0) + 1;
  if (task.attempt < attempts && frame != nullptr) {
    take_payload(task, *frame);  // the claimed frame is still in the ring
    ++task.attempt;
    return nullptr;
  }
  std::string text;
  if (timed_out) {
    const auto limit = task.options.timeout.count() > 0 ? task.options.timeout : options_.task_timeout;
    text = "procpool: the task ran past its timeout of " + std::to_string(limit.count()) + " ms; " + why;
  } else {
    text = why + " while running the task";
  }
  if (attempts > 1) text += " (attempt " + std::to_string(task.attempt) + " of " + std::to_string(attempts) + ")";
  if (timed_out) return std::make_exception_ptr(TaskTimeout(text));
  const bool killed = WIFSIGNALED(death.status);
  return std::make_exception_ptr(WorkerLost(text, death.pid, killed ? WTERMSIG(death.status) : 0,
                                            WIFEXITED(death.status) ? WEXITSTATUS(death.status) : -1,
                                            death.backtrace));
}

void SlotTable::requeue_locked(PoolTask task) {
  task.state->set_task_id(task.id);  // in no ring now
  if (task.state->ready()) return;   // cancelled meanwhile
  const int priority = task.options.priority;
  backlog_.push_front(std::move(task), priority);
}

}  // namespace procpool::detail
