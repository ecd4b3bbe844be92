#include "engine/process/zygote.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <poll.h>
#include <string>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "procpool/errors.hpp"
#include "engine/sys/constants.hpp"
#include "engine/sys/fd_passing.hpp"
#include "engine/sys/inherited.hpp"
#include "engine/sys/pidfd.hpp"
#include "engine/sys/zygote_exclusions.hpp"

namespace procpool::detail {

namespace {

// The report and, for `spawned`, the parent's end of the worker's socket: one message.
bool send_report(int control, const ZygoteReport& report, int fd = -1) {
  return send_with_fd(control, &report, sizeof report, fd);
}

class ZygoteProcess {
 public:
  ZygoteProcess(int control, pid_t parent, const WorkerEntry& entry, std::vector<int> keep_fds)
      : control_(control), entry_(entry), keep_fds_(std::move(keep_fds)) {
    ::prctl(PR_SET_NAME, "procpool-zygote");
    // Blocked, not handled: the parent's handlers must not run here (its
    // SIGINT, SIGTERM), and the workers start with the defaults.
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    reset_signal_handlers();
    drop_zygote_exclusions();  // before the fds go: it closes some by number
    keep_fds_.push_back(control_);  // the room was reserved: nothing is allocated here
    close_fds_except(keep_fds_);
    keep_fds_.pop_back();  // a worker keeps its socket, not the zygote's
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigchld_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    // A pidfd becomes readable when the whole parent process is gone, whichever
    // thread forked us (PR_SET_PDEATHSIG would fire when that thread exits).
    parent_ = pidfd_open(parent);
    if (sigchld_ < 0 || parent_ < 0 || ::getppid() != parent) ::_exit(0);
  }

  [[noreturn]] void run() {
    for (;;) {
      pollfd fds[3] = {{control_, POLLIN, 0}, {sigchld_, POLLIN, 0}, {parent_, POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        shutdown();
      }
      if (fds[1].revents != 0) reap(false);
      if (fds[2].revents != 0) shutdown();
      if (fds[0].revents != 0) {
        ZygoteRequest request{};
        const ssize_t n = ::recv(control_, &request, sizeof request, 0);
        if (n != static_cast<ssize_t>(sizeof request)) shutdown();  // the parent closed its end, or garbage
        handle(request);
      }
    }
  }

 private:
  void handle(const ZygoteRequest& request) {
    switch (request.op) {
      case ZygoteRequest::Op::spawn: spawn(request.slot); break;
      case ZygoteRequest::Op::kill:
        // Only a child not yet reaped: its pid cannot have been reused.
        if (children_.count(request.pid) != 0) ::kill(request.pid, request.signal);
        break;
      case ZygoteRequest::Op::shutdown: shutdown();
      case ZygoteRequest::Op::finish:
        finishing_ = true;
        if (children_.empty()) shutdown();
        break;
    }
  }

  void spawn(int slot) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      send_report(control_, {ZygoteReport::Op::spawn_failed, slot, -1, errno});
      return;
    }
    const int number = ++spawned_;
    const pid_t zygote = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      // The worker dies with the zygote (single-threaded, so the death signal is reliable).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != zygote) ::_exit(0);
      keep_fds_.push_back(pair[1]);
      close_fds_except(keep_fds_);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      entry_(slot, UniqueFd(pair[1]), number);
      ::_exit(0);
    }
    ::close(pair[1]);
    if (pid < 0) {
      send_report(control_, {ZygoteReport::Op::spawn_failed, slot, -1, errno});
    } else {
      children_[pid] = slot;
      if (!send_report(control_, {ZygoteReport::Op::spawned, slot, pid, 0}, pair[0])) shutdown();
    }
    ::close(pair[0]);
  }

  void reap(bool block) {
    signalfd_siginfo info;
    while (::read(sigchld_, &info, sizeof info) > 0) {
    }
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, block ? 0 : WNOHANG);
      if (pid <= 0) {
        // Its exit overlaps the parent's handling of the last reports.
        if (!block && finishing_ && children_.empty()) shutdown();
        return;
      }
      auto it = children_.find(pid);
      if (it == children_.end()) continue;
      const int slot = it->second;
      children_.erase(it);
      if (!block) send_report(control_, {ZygoteReport::Op::exited, slot, pid, status});
    }
  }

  [[noreturn]] void shutdown() {
    for (const auto& [pid, slot] : children_) ::kill(pid, SIGKILL);
    reap(true);
    ::_exit(0);
  }

  int control_;
  int sigchld_ = -1;
  int parent_ = -1;
  const WorkerEntry& entry_;
  std::vector<int> keep_fds_;  // 0, 1, 2 and PoolOptions::keep_fds: what a worker inherits
  std::map<pid_t, int> children_;
  int spawned_ = 0;
  bool finishing_ = false;  // asked to finish: exit with the last child
};

}  // namespace

Zygote::Zygote(WorkerEntry entry, std::vector<int> keep_fds) {
  // With room for the zygote's socket, then a worker's: the child must not allocate to add them.
  keep_fds.insert(keep_fds.end(), {0, 1, 2});
  keep_fds.reserve(keep_fds.size() + 1);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    throw Error(std::string("procpool::Pool: cannot create the zygote's socket: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  std::fflush(nullptr);  // or buffered output would be printed twice
  // Every signal blocked across the fork: until the zygote has reset them, a
  // handler of the program must not run in it (a Ctrl-C just then).
  sigset_t all;
  sigset_t before;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(pair[0]);
    ZygoteProcess(pair[1], parent, entry, std::move(keep_fds)).run();
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ::close(pair[1]);
  if (pid_ < 0) {
    ::close(pair[0]);
    throw Error(std::string("procpool::Pool: cannot fork the zygote: ") + std::strerror(errno));
  }
  control_.reset(pair[0]);
}

Zygote::~Zygote() { shutdown(shutdown_grace); }

void Zygote::request(const ZygoteRequest& request) noexcept {
  if (control_) ::send(control_.get(), &request, sizeof request, MSG_NOSIGNAL);
}

bool Zygote::read_report(ZygoteReport& report, UniqueFd& worker_socket) noexcept {
  return receive_with_fd(control_.get(), &report, sizeof report, worker_socket, 0) ==
         static_cast<ssize_t>(sizeof report);
}

void Zygote::shutdown(std::chrono::milliseconds grace) noexcept {
  if (pid_ <= 0) return;
  request({ZygoteRequest::Op::shutdown, 0, 0, 0});
  // Sleep until it has exited (its pidfd turns readable), not in polling rounds.
  const UniqueFd pidfd(pidfd_open(pid_));
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    if (pidfd) {
      pollfd fd{pidfd.get(), POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(left.count()) + 1);
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  pid_ = -1;
}

}  // namespace procpool::detail
