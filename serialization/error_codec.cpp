#include "procpool/detail/error_codec.hpp"

#include <cereal/types/string.hpp>
#include <cstdint>
#include <cstdlib>
#include <cxxabi.h>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include "procpool/detail/wire_archive.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

enum class ErrorKind : std::uint8_t {
  logic_error,
  invalid_argument,
  domain_error,
  length_error,
  out_of_range,
  runtime_error,
  range_error,
  overflow_error,
  underflow_error,
  bad_alloc,
  serialization,
  remote,
};

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

// Only an exact standard type travels as itself; a subclass (a user type
// deriving from std::runtime_error, a procpool error) becomes a RemoteError
// that keeps its real name.
ErrorKind kind_of(const std::exception& e) {
  const std::type_info& t = typeid(e);
  if (t == typeid(std::logic_error)) return ErrorKind::logic_error;
  if (t == typeid(std::invalid_argument)) return ErrorKind::invalid_argument;
  if (t == typeid(std::domain_error)) return ErrorKind::domain_error;
  if (t == typeid(std::length_error)) return ErrorKind::length_error;
  if (t == typeid(std::out_of_range)) return ErrorKind::out_of_range;
  if (t == typeid(std::runtime_error)) return ErrorKind::runtime_error;
  if (t == typeid(std::range_error)) return ErrorKind::range_error;
  if (t == typeid(std::overflow_error)) return ErrorKind::overflow_error;
  if (t == typeid(std::underflow_error)) return ErrorKind::underflow_error;
  if (t == typeid(std::bad_alloc)) return ErrorKind::bad_alloc;
  if (t == typeid(SerializationError)) return ErrorKind::serialization;
  return ErrorKind::remote;
}

void write(OutputBuffer& out, ErrorKind kind, const std::string& type_name, const std::string& message) {
  WireOutputArchive archive(out);
  archive(static_cast<std::uint8_t>(kind), type_name, message);
}

}  // namespace

void encode_current_exception(OutputBuffer& out) noexcept {
  const std::size_t start = out.size();
  try {
    try {
      throw;
    } catch (const std::exception& e) {
      write(out, kind_of(e), demangle(typeid(e).name()), e.what());
    } catch (const std::string& s) {
      write(out, ErrorKind::remote, "std::string", s);
    } catch (const char* s) {
      write(out, ErrorKind::remote, "const char*", s != nullptr ? s : "");
    } catch (...) {
      const std::type_info* t = abi::__cxa_current_exception_type();
      const std::string name = t != nullptr ? demangle(t->name()) : "unknown";
      write(out, ErrorKind::remote, name, "task threw a " + name);
    }
  } catch (...) {
    // Out of memory while describing the error: say so in as few bytes as possible.
    out.truncate(start);
    try {
      write(out, ErrorKind::bad_alloc, "std::bad_alloc", "std::bad_alloc");
    } catch (...) {
      out.truncate(start);
    }
  }
}

std::exception_ptr decode_exception(InputBuffer& in, pid_t worker_pid, bool strict) {
  std::uint8_t raw_kind = 0;
  std::string type_name;
  std::string message;
  try {
    WireInputArchive archive(in);
    archive(raw_kind, type_name, message);
    if (raw_kind > static_cast<std::uint8_t>(ErrorKind::remote)) {
      throw SerializationError("unknown error kind " + std::to_string(raw_kind));
    }
  } catch (const std::exception& e) {
    SerializationError error(std::string("procpool: cannot decode a task's error: ") + e.what());
    if (strict) throw error;
    return std::make_exception_ptr(error);
  }
  switch (static_cast<ErrorKind>(raw_kind)) {
    case ErrorKind::logic_error: return std::make_exception_ptr(std::logic_error(message));
    case ErrorKind::invalid_argument: return std::make_exception_ptr(std::invalid_argument(message));
    case ErrorKind::domain_error: return std::make_exception_ptr(std::domain_error(message));
    case ErrorKind::length_error: return std::make_exception_ptr(std::length_error(message));
    case ErrorKind::out_of_range: return std::make_exception_ptr(std::out_of_range(message));
    case ErrorKind::runtime_error: return std::make_exception_ptr(std::runtime_error(message));
    case ErrorKind::range_error: return std::make_exception_ptr(std::range_error(message));
    case ErrorKind::overflow_error: return std::make_exception_ptr(std::overflow_error(message));
    case ErrorKind::underflow_error: return std::make_exception_ptr(std::underflow_error(message));
    case ErrorKind::bad_alloc: return std::make_exception_ptr(std::bad_alloc());
    case ErrorKind::serialization: return std::make_exception_ptr(SerializationError(message));
    case ErrorKind::remote: return std::make_exception_ptr(RemoteError(type_name, message, worker_pid));
  }
  return {};  // unreachable: the kind was checked above
}

}  // namespace procpool::detail
