#include "engine/sys/fd_passing.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace procpool::detail {

bool send_with_fd(int socket, const void* bytes, std::size_t size, int fd, int flags) noexcept {
  iovec iov{const_cast<void*>(bytes), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &msg, MSG_NOSIGNAL | flags);
  } while (sent < 0 && errno == EINTR);
  return sent == static_cast<ssize_t>(size);
}

ssize_t receive_with_fd(int socket, void* bytes, std::size_t size, UniqueFd& fd, int flags) noexcept {
  iovec iov{bytes, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = ::recvmsg(socket, &msg, flags | MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  fd.reset();
  const cmsghdr* cmsg = got > 0 ? CMSG_FIRSTHDR(&msg) : nullptr;
  if (cmsg != nullptr && cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
      cmsg->cmsg_len == CMSG_LEN(sizeof(int)) && (msg.msg_flags & MSG_CTRUNC) == 0) {
    int received = -1;
    std::memcpy(&received, CMSG_DATA(cmsg), sizeof received);
    fd.reset(received);
  }
  return got;
}

}  // namespace procpool::detail
