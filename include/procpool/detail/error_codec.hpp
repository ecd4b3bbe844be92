// Exceptions across the process boundary: standard ones keep their type.
#pragma once

#include <cstdint>
#include <exception>
#include <sys/types.h>

#include "procpool/detail/buffer.hpp"

namespace procpool::detail {

// A result payload, and each item of a chunk's result, starts with one of these.
enum class ResultStatus : std::uint8_t { value = 0, error = 1 };

// Writes the exception now being handled (inside a catch block). Never throws.
void encode_current_exception(OutputBuffer& out) noexcept;

// Re-creates an encoded exception: the same standard type and what(), a
// SerializationError, or a RemoteError naming the thrown type and the worker.
// Garbage bytes give a SerializationError, never a crash; with `strict`, they
// throw it instead (when more data follows, whose position is then unknown).
std::exception_ptr decode_exception(InputBuffer& in, pid_t worker_pid, bool strict = false);

}  // namespace procpool::detail
