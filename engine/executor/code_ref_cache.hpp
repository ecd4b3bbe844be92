// What the code-ref cache holds, for the engine's tests (not installed).
#pragma once

#include <cstddef>

namespace procpool::detail {

// How many module-table snapshots the cache keeps: one per distinct set of
// loaded modules it has scanned. Thread-safe.
std::size_t code_ref_snapshot_count();

}  // namespace procpool::detail
