#include "engine/pool/worker.hpp"

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <malloc.h>
#include <optional>
#include <string>
#include <unistd.h>

#include "engine/executor/attachments.hpp"
#include "engine/executor/payload.hpp"
#include "engine/ipc/arena_store.hpp"
#include "engine/ipc/payload_arenas.hpp"
#include "engine/ipc/result_blocks.hpp"
#include "engine/ipc/side_channel.hpp"
#include "engine/pool/block_channel.hpp"
#include "engine/pool/crash_handler.hpp"
#include "engine/pool/start_failures.hpp"
#include "engine/pool/worker_stop.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The running worker's blocks, for find_shared_block() while a task decodes.
WorkerBlocks* worker_blocks = nullptr;

std::shared_ptr<SharedBlock> find_worker_block(std::uint64_t id) {
  return worker_blocks != nullptr ? worker_blocks->find(id) : nullptr;
}

[[noreturn]] void leave(int code) {
  std::fflush(nullptr);
  ::_exit(code);
}

class Worker {
 public:
  Worker(const WorkerConfig& config, UniqueFd socket)
      : slot_(config.region->slot(config.slot)),
        pool_(config.region->pool()),
        tasks_(config.region->task_ring(config.slot)),
        results_(config.region->result_ring(config.slot)),
        socket_(std::move(socket)),
        blocks_(socket_.get()),
        task_arena_(config.arenas->tasks()),
        result_blocks_(slot_.arena_results_taken),
        stop_(slot_) {
    worker_blocks = &blocks_;
    set_task_stop_source(&stop_);
    set_shared_block_lookup(&find_worker_block);
    spill_.use(std::make_shared<ArenaAllocator>(config.arenas->results(config.slot), payload_warm_bytes));
  }

  // Returns false on a stop frame; exits on a corrupt ring.
  bool run_next() {
    FrameView frame{};
    Ring::Peek peek = Ring::Peek::empty;
    while (!slot_.tasks_bell.wait([&] { return (peek = tasks_.peek(frame)) != Ring::Peek::empty; },
                                  worker_spin)) {
    }
    if (peek == Ring::Peek::corrupt || frame.header.kind == FrameKind::result || frame.header.kind == FrameKind::timing) {
      leave(worker_exit_corrupt_ring);
    }
    if (frame.header.kind == FrameKind::stop) {
      tasks_.pop(frame);
      return false;
    }
    if (frame.header.kind == FrameKind::forget) {
      blocks_.receive_pending();  // a block sent for a task that was never published
      blocks_.forget(frame.header.task_id);
      pop_skipped(frame);
      return true;
    }
    if (!tasks_.try_mark(frame, frame_claimed)) {
      // The parent gave it to another worker: drop its memfd too, if it has
      // one, or the next large task here would find this one's first.
      if ((frame.header.flags & frame_side_channel) != 0) {
        blocks_.receive_pending();  // shared blocks sent ahead of it come before its memfd
        try {
          receive_fd(socket_.get(), frame.header.task_id);
        } catch (const SerializationError&) {
        }
      }
      pop_skipped(frame);
      return true;
    }
    const std::int64_t started_ns = monotonic_ns();
    slot_.started_ns.store(started_ns, std::memory_order_relaxed);
    slot_.running_task.store(frame.header.task_id, std::memory_order_release);
    run_task(frame, started_ns);
    tasks_.pop(frame);
    // seq_cst, with the load below, against the watch's store of kill_for then
    // load of running_task: either it sees this task over, or we see its kill.
    slot_.running_task.store(0, std::memory_order_seq_cst);
    if (slot_.kill_for.load(std::memory_order_seq_cst) == frame.header.task_id) leave(0);
    return true;
  }

 private:
  // Pops a frame that yields no result. The parent retries dispatching its
  // backlog after each result; room freed without one it must be told of,
  // or a task that found every ring full could wait forever. Told only once
  // the ring is empty: a frame still in it is a task whose result will come
  // (after this pop), or one more frame to skip.
  void pop_skipped(const FrameView& frame) {
    tasks_.pop(frame);
    if (!tasks_.empty()) return;
    // seq_cst read-modify-write before the bell's: the result thread that
    // sleeps either sees the count change or is woken.
    pool_.tasks_room_freed.fetch_add(1, std::memory_order_seq_cst);
    pool_.parent_bell.ring();
  }

  void run_task(const FrameView& frame, std::int64_t started_ns) {
    std::size_t room = 0;
    char* window = results_.window(room);
    result_blocks_.reclaim();
    out_.reset(window, room, results_.max_payload());
    std::optional<SideChannelPayload> side;
    // Shared blocks sent ahead of a large payload come before its memfd; with
    // a small one they are taken when a handle names them (WorkerBlocks::find).
    if ((frame.header.flags & frame_side_channel) != 0) blocks_.receive_pending();
    run_payload([&] { return open_payload(frame, socket_.get(), side, task_arena_); }, out_);
    // Only a task the parent asked to time pays for the second clock read
    // and the timing frame, which follows its result (PoolStats, the trace).
    const bool timed = (frame.header.flags & frame_timed) != 0;
    const TaskTiming timing{started_ns, timed ? monotonic_ns() : 0};
    publish(frame.header.task_id);
    if (timed) push(FrameKind::timing, 0, frame.header.task_id, &timing, sizeof timing);
    wake_parent();
  }

  void publish(std::uint64_t task_id) {
    switch (out_.storage()) {
      case OutputBuffer::Storage::window:
        results_.commit_in_place(FrameKind::result, 0, task_id, out_.size());
        break;
      case OutputBuffer::Storage::heap:
        push(0, task_id, out_.data(), out_.size());
        break;
      case OutputBuffer::Storage::spilled: {
        const std::uint64_t size = out_.size();
        ArenaStore::Taken taken = spill_.take(out_);
        if (taken.block) {
          const ArenaRef ref{taken.block.block().offset, size};
          push(frame_arena, task_id, &ref, sizeof ref);
          result_blocks_.published(std::move(taken.block));
        } else {
          // The arena had no room: a memfd of its own, over the socket.
          send_fd(socket_.get(), taken.memfd.get(), task_id);
          push(frame_side_channel, task_id, &size, sizeof size);
        }
        break;
      }
    }
  }

  void wake_parent() {
    // seq_cst read-modify-write: orders the tail store before the read, so a
    // pumper that stops now either sees this result or is seen to have stopped.
    if (pool_.pumpers.fetch_add(0, std::memory_order_seq_cst) == 0) pool_.parent_bell.ring();
  }

  // Waits for the parent to make room: it drains result rings all the time.
  void push(std::uint16_t flags, std::uint64_t task_id, const void* bytes, std::size_t size) {
    push(FrameKind::result, flags, task_id, bytes, size);
  }
  void push(FrameKind kind, std::uint16_t flags, std::uint64_t task_id, const void* bytes, std::size_t size) {
    while (!results_.push(kind, flags, task_id, bytes, size)) {
      pool_.parent_bell.ring();
      slot_.results_space_bell.wait([&] { return results_.has_room_for(size); }, worker_spin);
    }
  }

  SlotControl& slot_;
  PoolControl& pool_;
  Ring tasks_;
  Ring results_;
  UniqueFd socket_;
  WorkerBlocks blocks_;
  std::span<const char> task_arena_;
  ResultBlocks result_blocks_;  // results in the arena that the parent may still read
  ArenaStore spill_;            // declared before out_, whose destructor discards through it
  OutputBuffer out_{&spill_};
  WorkerStop stop_;  // this_task's stop requests
};

}  // namespace

void run_worker(const WorkerConfig& config, UniqueFd socket) {
  // A task with a large argument allocates it, and often a result as large,
  // then frees both: keep that memory for the next task rather than hand it
  // back and fault it in again page by page (by default glibc trims a free
  // top of heap over 32 MiB). Up to 32 MiB blocks come from the heap.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 128 << 20);
  // Before any user code (the initializer too): a crash leaves its stack for the parent.
  install_crash_handler(config.region->slot(config.slot).crash);
  // Its own view of the arenas: read the tasks', write only its own results.
  config.arenas->restrict_to(config.slot);
  SlotControl& slot = config.region->slot(config.slot);
  if (config.initializer != nullptr && *config.initializer) {
    try {
      (*config.initializer)();
    } catch (const std::exception& e) {
      leave_initializer_failed(slot, e.what());
    } catch (...) {
      leave_initializer_failed(slot, "a non-standard exception");
    }
  }
  config.region->pool().workers_initialized.fetch_add(1, std::memory_order_relaxed);
  Worker worker(config, std::move(socket));
  std::size_t done = 0;
  while (worker.run_next()) {
    if (config.maxtasksperchild != 0 && ++done >= config.maxtasksperchild) break;
  }
  leave(0);
}

}  // namespace procpool::detail
