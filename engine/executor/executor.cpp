#include "procpool/detail/executor.hpp"

#include <exception>
#include <string>

#include "procpool/errors.hpp"

namespace procpool::detail {

void Executor::attach(ResultStateBase& state) const noexcept { state.set_source(result_source_); }

bool Executor::serialize_or_fail(const char* call, ResultStateBase& state, FunctionRef<void(OutputBuffer&)> encode,
                                 OutputBuffer& out) const {
  try {
    encode(out);
    return true;
  } catch (const SerializationError&) {
    state.fail(std::current_exception());
  } catch (const std::exception& e) {
    state.fail(std::make_exception_ptr(
        SerializationError(std::string(display_name()) + "::" + call + ": cannot serialize the task: " + e.what())));
  }
  return false;
}

void Executor::check_shares(const char* call) const {
  check_running(call);
  throw ValueError(std::string(display_name()) + "::" + call + ": this pool cannot pass shared data to its tasks");
}

}  // namespace procpool::detail
