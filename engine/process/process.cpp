#include "procpool/process.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <exception>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <thread>
#include <typeinfo>
#include <unistd.h>

#include "engine/process/current_process.hpp"
#include "engine/sys/pidfd.hpp"

namespace procpool {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void misuse(const char* call, const char* what) {
  throw ValueError(std::string("procpool::Process::") + call + ": " + what);
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* name = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string result = status == 0 && name != nullptr ? name : mangled;
  std::free(name);
  return result;
}

// What Python prints for an uncaught exception: "<type>: <message>".
std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return type != nullptr ? "exception of type " + demangle(type->name()) : "unknown exception";
  }
}

// In a daemon child: a thread that kills the process once `parent` is gone,
// however it ended. PR_SET_PDEATHSIG would fire when the forking *thread*
// exits, which is not the parent's death.
void watch_parent(pid_t parent) {
  const int parent_fd = detail::pidfd_open(parent);
  // Gone already (we were reparented): die as the watcher would have made us.
  if ((parent_fd < 0 && errno == ESRCH) || ::getppid() != parent) ::kill(::getpid(), SIGKILL);
  if (parent_fd < 0) {
    throw Error(std::string("procpool::Process::start: cannot watch the parent of a daemon: ") + std::strerror(errno));
  }
  // Signals sent to the process stay for the threads that run the user's code.
  sigset_t all;
  sigset_t old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread([parent_fd] {
    pollfd fd{parent_fd, POLLIN, 0};
    while (::poll(&fd, 1, -1) < 0 && errno == EINTR) {
    }
    ::kill(::getpid(), SIGKILL);
  }).detach();
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

Process::Process() : identity_(detail::next_child_identity()), name_("Process-" + identity_) {}

Process::~Process() {
  if (pid_ > 0 && !closed_ && ::getpid() == owner_) {
    if (daemon_) detail::signal_child(*record_, SIGKILL);
    wait_until_ended(std::nullopt);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
}

void Process::run() {
  if (target_) target_();
}

void Process::check_open(const char* call) const {
  if (closed_) misuse(call, "process is closed");
}

void Process::check_started(const char* call) const {
  check_open(call);
  if (pid_ == 0) misuse(call, "process has not been started");
  if (::getpid() != owner_) misuse(call, "the process was started by another process");
}

void Process::start() {
  check_open("start");
  if (pid_ != 0) misuse("start", "process has already been started");
  const ProcessInfo parent = current_process();
  if (parent.daemon) misuse("start", "a daemon process is not allowed to have children");
  std::fflush(nullptr);  // or buffered output would be written twice
  const pid_t pid = ::fork();
  if (pid == 0) run_child(parent);
  if (pid < 0) throw Error(std::string("procpool::Process::start: cannot fork: ") + std::strerror(errno));
  // Until it is registered, nobody else reaps the child: its pid stays ours.
  const int pidfd = detail::pidfd_open(pid);
  const int pidfd_error = errno;
  std::shared_ptr<detail::ChildRecord> record;
  if (pidfd >= 0) {
    try {
      record = detail::register_child(pid);
    } catch (...) {
    }
  }
  if (!record) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (pidfd >= 0) {
      ::close(pidfd);
      throw std::bad_alloc();
    }
    throw Error(std::string("procpool::Process::start: cannot open a pidfd: ") + std::strerror(pidfd_error));
  }
  pid_ = pid;
  owner_ = parent.pid;
  pidfd_ = pidfd;
  record_ = std::move(record);
}

void Process::run_child(const ProcessInfo& parent) noexcept {
  int code = 0;
  try {
    detail::become_child({name_, 0, daemon_}, parent, identity_);
    if (daemon_) watch_parent(parent.pid);
    run();
  } catch (...) {
    code = 1;
    try {
      const std::string message = "Process " + name_ + ":\n" + describe_current_exception() + "\n";
      std::fputs(message.c_str(), stderr);
    } catch (...) {
      std::fputs("Process: an exception escaped run()\n", stderr);
    }
  }
  std::fflush(nullptr);
  ::_exit(code);
}

bool Process::wait_until_ended(std::optional<Clock::time_point> deadline) const noexcept {
  for (;;) {
    if (detail::poll_child(*record_).ended) return true;
    int timeout_ms = -1;
    if (deadline) {
      const auto now = Clock::now();
      if (now >= *deadline) return false;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
      timeout_ms = static_cast<int>(std::min<decltype(left)>(left, INT_MAX));
    }
    pollfd fd{pidfd_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, timeout_ms);
    if ((ready > 0 && !detail::poll_child(*record_).ended) || (ready < 0 && errno != EINTR)) {
      // Readable a moment before it can be reaped, or poll() itself failed: do not spin.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

void Process::join() {
  check_started("join");
  wait_until_ended(std::nullopt);
}

bool Process::join_for(std::chrono::nanoseconds timeout) {
  check_started("join");
  // Beyond a century (or duration::max()): no deadline, which would overflow the clock.
  if (timeout >= std::chrono::hours(24 * 365 * 100)) return wait_until_ended(std::nullopt);
  return wait_until_ended(Clock::now() + timeout);
}

bool Process::is_alive() const {
  check_open("is_alive");
  if (pid_ == 0) return false;
  check_started("is_alive");
  return !detail::poll_child(*record_).ended;
}

void Process::terminate() {
  check_started("terminate");
  detail::signal_child(*record_, SIGTERM);
}

void Process::kill() {
  check_started("kill");
  detail::signal_child(*record_, SIGKILL);
}

void Process::close() {
  if (closed_) return;
  if (pid_ != 0 && ::getpid() == owner_ && !detail::poll_child(*record_).ended) {
    misuse("close", "process is still running; join() or terminate() it first");
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  closed_ = true;
}

std::optional<pid_t> Process::pid() const {
  check_open("pid");
  if (pid_ == 0) return std::nullopt;
  return pid_;
}

std::optional<int> Process::exitcode() const {
  check_open("exitcode");
  if (pid_ == 0) return std::nullopt;
  check_started("exitcode");
  const detail::ChildStatus status = detail::poll_child(*record_);
  if (!status.ended) return std::nullopt;
  return status.exitcode;
}

void Process::set_daemon(bool daemon) {
  check_open("set_daemon");
  if (pid_ != 0) misuse("set_daemon", "process has already been started");
  daemon_ = daemon;
}

int Process::sentinel() const {
  check_started("sentinel");
  return pidfd_;
}

}  // namespace procpool
