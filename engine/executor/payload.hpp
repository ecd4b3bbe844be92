// The two ends of a task's run, shared by both pools: the worker's (a pool
// worker process, an MPI rank) that runs a task payload into a result
// payload, and the parent's that completes a result state from it.
#pragma once

#include <sys/types.h>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/function_ref.hpp"
#include "procpool/detail/result_state.hpp"

namespace procpool::detail {

// Runs one task payload, which `open` gives: resolves its invoker's code ref
// and calls it. `out` gets, from its current end, the result status and then
// the value or the encoded error. Never throws.
void run_payload(FunctionRef<InputBuffer()> open, OutputBuffer& out) noexcept;

// What completing a state from a result did: gave it its value, failed it
// (the task's error, or a SerializationError), or nothing, as something
// else (a cancel()) had completed it first. Counted by Pool::stats().
enum class ResultOutcome { value, error, none };

// Completes `state` from a result payload as run_payload() wrote it, which
// `open` gives; a payload that cannot be read fails the state with a
// SerializationError. Never throws.
ResultOutcome complete_from_result(ResultStateBase& state, FunctionRef<InputBuffer()> open,
                                   pid_t worker_pid) noexcept;

}  // namespace procpool::detail
