// Passing a file descriptor, with a few bytes beside it, over a Unix socket.
#pragma once

#include <cstddef>
#include <sys/types.h>

#include "engine/sys/unique_fd.hpp"

namespace procpool::detail {

// Sends `size` bytes and, if fd >= 0, the fd with them (SCM_RIGHTS), as one
// message. Returns whether all of it went. Never raises SIGPIPE.
bool send_with_fd(int socket, const void* bytes, std::size_t size, int fd, int flags = 0) noexcept;

// Receives one message of up to `size` bytes and the fd sent with it, if any
// (close-on-exec). Returns the byte count (0 at end of stream, -1 on error).
// `flags` are recvmsg's (MSG_DONTWAIT, ...). Retries on EINTR.
ssize_t receive_with_fd(int socket, void* bytes, std::size_t size, UniqueFd& fd, int flags) noexcept;

}  // namespace procpool::detail
