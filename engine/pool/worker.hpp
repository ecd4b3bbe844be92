// The loop a worker process runs: take a task frame, run it, publish its result.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include "engine/ipc/payload_arenas.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/sys/unique_fd.hpp"

namespace procpool::detail {

// Exit codes with which a worker tells the parent why it left on its own.
constexpr int worker_exit_corrupt_ring = 70;
constexpr int worker_exit_initializer_failed = 71;

struct WorkerConfig {
  const SharedRegion* region;
  const PayloadArenas* arenas;
  int slot;
  const std::function<void()>* initializer;
  std::size_t maxtasksperchild;  // 0: unlimited
};

// Never returns: runs the initializer, then tasks until a stop frame (or
// maxtasksperchild tasks), and exits with _exit.
[[noreturn]] void run_worker(const WorkerConfig& config, UniqueFd socket);

// How long an idle worker polls its ring before it sleeps: long enough to
// catch the next task of a caller that submits in a loop (at 10 us, a batch
// of a million no-ops cost 168k futex calls and 110k context switches; at
// 50 us, 35k and 26k), short enough not to take a core for long from the
// parent when workers outnumber cores.
constexpr std::chrono::microseconds worker_spin{50};

}  // namespace procpool::detail
