// pidfd_open(2): a file descriptor that turns readable when a process exits.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace procpool::detail {

// The system call itself: Debian 12's glibc 2.36 declares pidfd_open() in
// <sys/pidfd.h> without extern "C", so C++ code cannot link against it.
// Returns -1 with errno set on failure.
inline int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace procpool::detail
