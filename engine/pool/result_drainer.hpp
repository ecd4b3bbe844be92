// The result side of a pool: takes results from the workers' result rings
// (on the result thread, or on a thread waiting in get() that pumps),
// completes their states, refills the rings from the backlog, and runs the
// results' callbacks on the result thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/executor/lifecycle.hpp"
#include "engine/executor/result_source.hpp"
#include "engine/ipc/payload_arenas.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/pool/slot_table.hpp"
#include "engine/pool/stats_recorder.hpp"
#include "engine/pool/trace_writer.hpp"
#include "engine/process/zygote.hpp"

namespace procpool::detail {

class PoolWatch;

class ResultDrainer final : public ResultSource {
 public:
  // `trace` may be null (no PoolOptions::trace_path).
  ResultDrainer(SharedRegion& region, const PayloadArenas& arenas, SlotTable& table, PoolWatch& watch,
                Lifecycle& lifecycle, StatsRecorder& stats, TraceWriter* trace) noexcept
      : region_(region),
        arenas_(arenas),
        table_(table),
        watch_(watch),
        lifecycle_(lifecycle),
        stats_(stats),
        trace_(trace) {}
  ResultDrainer(const ResultDrainer&) = delete;
  ResultDrainer& operator=(const ResultDrainer&) = delete;

  // Starts the result thread; each round it first calls `handle_events`
  // (under the drain lock), which returns whether anything happened.
  void start(Zygote& zygote, std::function<bool()> handle_events);
  // Waits for the result thread to end (once the pool is terminated, or
  // closed with every worker gone).
  void join_thread() noexcept;
  // Ends pumping and the result thread.
  void stop() noexcept;
  // Wakes the result thread.
  void signal() noexcept;
  // Under the pool mutex, closing with nothing queued and every worker told
  // to stop: once no task is in flight either, asks the zygote to exit with
  // its last worker (once).
  void finish_zygote_locked() noexcept;
  // Whether the caller is the result thread (where callbacks run). Set by start().
  bool on_result_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

  // Held by whichever thread drains result rings; see the lock order in pool_core.hpp.
  std::mutex& drain_mutex() noexcept { return drain_mutex_; }
  // Under the drain lock: takes the ready results of one worker.
  bool drain_results(int slot);

  bool pump() noexcept override;
  void begin_pumping() noexcept override;
  void end_pumping() noexcept override;
  bool cancel(ResultStateBase& state) override;
  bool cancel_unstarted(ResultStateBase& state) override;

 private:
  void loop();
  bool drain_all(bool changed);
  bool any_results() const noexcept;

  SharedRegion& region_;
  const PayloadArenas& arenas_;  // where arena results are
  SlotTable& table_;
  PoolWatch& watch_;
  Lifecycle& lifecycle_;
  StatsRecorder& stats_;
  TraceWriter* const trace_;
  Zygote* zygote_ = nullptr;
  std::function<bool()> handle_events_;

  // Guards the pop side of every slot's `inflight` and the result rings.
  // Never held while user callbacks run.
  std::mutex drain_mutex_;
  std::atomic<bool> pumping_open_{true};
  std::mutex callbacks_mutex_;  // guards pumped_callbacks_ only
  std::vector<std::function<void()>> pumped_callbacks_;  // collected by pumpers, run by the result thread
  std::atomic<std::uint32_t> signals_{0};  // bumped by other threads to wake the result thread
  std::thread thread_;
  std::thread::id thread_id_;  // thread_'s, kept apart: join() resets thread_
  bool zygote_finishing_ = false;  // under the pool mutex
};

}  // namespace procpool::detail
