// The loop a worker process runs: take a task frame, run it, publish its
// result; and the two ends of a result payload, which the MPI pool shares.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <sys/types.h>

#include "engine/executor/result_source.hpp"
#include "engine/ipc/shared_region.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/buffer.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/result_state.hpp"

namespace procpool::detail {

// Exit codes with which a worker tells the parent why it left on its own.
constexpr int worker_exit_corrupt_ring = 70;
constexpr int worker_exit_initializer_failed = 71;

struct WorkerConfig {
  const SharedRegion* region;
  int slot;
  const std::function<void()>* initializer;
  std::size_t maxtasksperchild;  // 0: unlimited
};

// Never returns: runs the initializer, then tasks until a stop frame (or
// maxtasksperchild tasks), and exits with _exit.
[[noreturn]] void run_worker(const WorkerConfig& config, UniqueFd socket);

// Runs one task payload, as every worker does (a pool worker process, an MPI
// rank): `open` gives the payload; `out` gets, from its current end, the
// result status and then the value or the encoded error. Never throws.
void run_payload(FunctionRef<InputBuffer()> open, OutputBuffer& out) noexcept;

// The parent's end: completes `state` from a result payload as run_payload()
// wrote it, which `open` gives; a payload that cannot be read fails the state
// with a SerializationError. The state's callbacks run here, or go to
// deferred_callbacks while a drainer has set it. Never throws.
void complete_from_result(ResultStateBase& state, FunctionRef<InputBuffer()> open, pid_t worker_pid) noexcept;

// How long an idle worker polls its ring before it sleeps: long enough to
// catch the next task of a caller that submits in a loop, short enough not to
// take a core for long from the parent when workers outnumber cores.
constexpr std::chrono::microseconds worker_spin{10};

}  // namespace procpool::detail
