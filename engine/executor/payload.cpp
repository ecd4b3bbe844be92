#include "engine/executor/payload.hpp"

#include <cstdint>
#include <exception>
#include <string>

#include "procpool/detail/code_ref.hpp"
#include "procpool/detail/error_codec.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

void run_payload(FunctionRef<InputBuffer()> open, OutputBuffer& out) noexcept {
  const std::size_t start = out.size();
  const auto status_value = static_cast<std::uint8_t>(ResultStatus::value);
  try {
    out.write(&status_value, 1);
    InputBuffer in = open();
    CodeRef ref;
    in.read(&ref.module, sizeof ref.module);
    in.read(&ref.offset, sizeof ref.offset);
    const Invoker invoke = function_from_code_ref<void(InputBuffer&, OutputBuffer&)>(ref);
    invoke(in, out);
  } catch (...) {
    out.truncate(start);
    const auto status_error = static_cast<std::uint8_t>(ResultStatus::error);
    // encode_current_exception never throws; a one-byte write only fails on a
    // memory exhaustion it would not survive either.
    try {
      out.write(&status_error, 1);
    } catch (...) {
    }
    encode_current_exception(out);
  }
}

ResultOutcome complete_from_result(ResultStateBase& state, FunctionRef<InputBuffer()> open,
                                   pid_t worker_pid) noexcept {
  const auto failed = [](bool completed) { return completed ? ResultOutcome::error : ResultOutcome::none; };
  try {
    InputBuffer in = open();
    std::uint8_t status = 0;
    in.read(&status, 1);
    if (status == static_cast<std::uint8_t>(ResultStatus::value)) {
      state.deliver(in, worker_pid);
      // Only deliver() gives a task's state a value; a state that a cancel()
      // claimed first is either not ready yet or holds an error.
      return state.ready() && !state.error() ? ResultOutcome::value : ResultOutcome::none;
    }
    if (status == static_cast<std::uint8_t>(ResultStatus::error)) return failed(state.fail(decode_exception(in, worker_pid)));
    throw SerializationError("procpool: a result has an unknown status " + std::to_string(status));
  } catch (const SerializationError&) {
    return failed(state.fail(std::current_exception()));
  } catch (const std::exception& e) {
    return failed(state.fail(std::make_exception_ptr(
        SerializationError(std::string("procpool: cannot deserialize a task's result: ") + e.what()))));
  }
}

}  // namespace procpool::detail
