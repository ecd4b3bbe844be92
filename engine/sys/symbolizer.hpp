// Names for code addresses of this process, read from its ELF files.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace procpool::detail {

// One line per frame, "#0 0x55d3c0a1b2c4 parse(std::string const&) at
// /src/parse.cpp:42": demangled names from each module's symbol table
// (.symtab, else .dynsym), file:line from its own DWARF when it has some;
// "?? (module)" or "??" when unknown. Reads this process's mappings now (the
// workers, forks of it, map the executable and libraries where it does). No
// network, no separate debug-info files. Slow (milliseconds): never on a hot
// path. Throws only std::bad_alloc; thread-safe.
std::string symbolize(std::span<const std::uintptr_t> frames);

}  // namespace procpool::detail
