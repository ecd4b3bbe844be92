// Naming machine code so that another process of the same executable can find it.
#pragma once

#include <bit>
#include <cstdint>

namespace procpool::detail {

// A function named by the build-id of the module (executable or shared library)
// that holds it and its offset from that module's load address. Unlike a raw
// address, it means the same function in a forked child and in an exec'd copy
// of the same build (an MPI rank), whatever the load address (PIE, ASLR).
struct CodeRef {
  std::uint64_t module = 0;  // hash of the module's GNU build-id
  std::uint64_t offset = 0;  // address minus the module's load bias

  friend bool operator==(const CodeRef&, const CodeRef&) = default;
};

// Names the function at `address`. Throws procpool::SerializationError if no
// loaded module holds the address in an executable segment, or the module has
// no GNU build-id. Thread-safe; cached after the first call per module.
CodeRef code_ref_of(std::uintptr_t address);

// Finds the function that `ref` names in this process. Throws
// procpool::SerializationError (naming the module hash and offset) if no
// loaded module has that build-id or the offset is outside its executable
// segments. Thread-safe.
std::uintptr_t resolve_code_ref(const CodeRef& ref);

template <class Fn>
CodeRef code_ref_of_function(Fn* fn) {
  return code_ref_of(std::bit_cast<std::uintptr_t>(fn));
}

template <class Fn>
Fn* function_from_code_ref(const CodeRef& ref) {
  return std::bit_cast<Fn*>(resolve_code_ref(ref));
}

}  // namespace procpool::detail
