// Helpers for the tests of procpool::Process: pipes between a test and the
// children it starts, and a child body that never returns. Each test program
// includes it once (it defines TSan's options for the program).
#pragma once

#include <doctest/doctest.h>

#include <cerrno>
#include <cstddef>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
// A daemon child starts a watcher thread; TSan refuses threads after a fork
// from a multi-threaded parent unless told otherwise.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
#endif

namespace test_support {

[[noreturn]] inline void sleep_forever() {
  for (;;) ::pause();
}

inline std::string read_all(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return out;
    }
  }
}

inline void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("write to the pipe failed");
    done += static_cast<std::size_t>(n);
  }
}

struct Pipe {
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe() {
    close_read();
    close_write();
  }
  int read_end() const { return fds[0]; }
  int write_end() const { return fds[1]; }
  void close_read() {
    if (fds[0] >= 0) ::close(fds[0]);
    fds[0] = -1;
  }
  void close_write() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
  int fds[2] = {-1, -1};
};

inline bool wait_readable(int fd, int timeout_ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}
inline bool readable(int fd) { return wait_readable(fd, 0); }

}  // namespace test_support
