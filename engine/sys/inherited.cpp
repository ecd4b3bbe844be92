#include "engine/sys/inherited.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace procpool::detail {

namespace {

// close_range(first, last), or false if the kernel lacks it (before 5.9).
bool close_range_of(unsigned first, unsigned last) noexcept {
#ifdef SYS_close_range
  return ::syscall(SYS_close_range, first, last, 0) == 0 || errno != ENOSYS;
#else
  (void)first;
  (void)last;
  return false;
#endif
}

// Without close_range: the open fds, read from /proc/self/fd before any is closed.
void close_listed_fds(const std::vector<int>& keep) noexcept {
  std::vector<int> open;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) {
    // No /proc: every number up to the limit.
    const long limit = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
    for (int fd = 0; fd < limit; ++fd) {
      if (!std::binary_search(keep.begin(), keep.end(), fd)) ::close(fd);
    }
    return;
  }
  try {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') open.push_back(std::atoi(entry->d_name));
    }
  } catch (...) {  // out of memory: close what was listed
  }
  const int own = ::dirfd(dir);
  for (int fd : open) {
    if (fd != own && !std::binary_search(keep.begin(), keep.end(), fd)) ::close(fd);
  }
  ::closedir(dir);
}

}  // namespace

void close_fds_except(std::span<const int> keep) noexcept {
  std::vector<int> sorted;
  try {
    for (int fd : keep) {
      if (fd >= 0) sorted.push_back(fd);
    }
  } catch (...) {
    return;  // out of memory right after fork: better to keep too much than to close what is needed
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  unsigned first = 0;
  for (int fd : sorted) {
    const auto kept = static_cast<unsigned>(fd);
    if (kept > first && !close_range_of(first, kept - 1)) {
      close_listed_fds(sorted);
      return;
    }
    first = kept + 1;
  }
  if (!close_range_of(first, UINT_MAX)) close_listed_fds(sorted);
}

void reset_signal_handlers() noexcept {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &action, nullptr);  // EINVAL for glibc's own real-time signals: left as they are
  }
}

}  // namespace procpool::detail
