// What a forked process inherits that it must not keep: the parent's file
// descriptors (a pipe or a connection it holds would stay open, and its peer
// never see EOF) and its signal handlers.
#pragma once

#include <span>

namespace procpool::detail {

// Closes every descriptor but those in `keep` (any order; duplicates, negative
// numbers and fds that are not open are fine). close_range (Linux 5.9) over
// the gaps, else one close per entry of /proc/self/fd. Never blocks or throws.
// For a single-threaded process just forked: another thread's fds would go too.
void close_fds_except(std::span<const int> keep) noexcept;

// Sets every signal's disposition to SIG_DFL (those glibc reserves are left
// to it). The mask is the caller's to set. Never blocks or throws.
void reset_signal_handlers() noexcept;

}  // namespace procpool::detail
