// What a worker inherits from the program that built its pool: none of its
// signal handlers or blocked signals, none of its file descriptors but 0, 1,
// 2 and PoolOptions::keep_fds. Only procpool's own crash handlers are set.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <poll.h>
#include <procpool/procpool.hpp>
#include <pthread.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "support.hpp"

namespace {

volatile std::sig_atomic_t handled = 0;
void parent_handler(int) { handled = 1; }

// The signals whose disposition is not SIG_DFL here, then -1, then the blocked
// ones. A handler of the parent's is -2.
std::vector<int> signal_state() {
  std::vector<int> out;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction action {};
    // glibc refuses its own real-time signals: nothing to compare for them.
    if (::sigaction(sig, nullptr, &action) != 0) continue;
    if (action.sa_handler == parent_handler) out.push_back(-2);
    if (action.sa_handler != SIG_DFL) out.push_back(sig);
  }
  out.push_back(-1);
  sigset_t mask;
  ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sigismember(&mask, sig) == 1) out.push_back(sig);
  }
  return out;
}

// Where fd `fd` of `pid` points: "pipe:[123]", "socket:[456]", "/tmp/x" ("" if not open).
std::string fd_target(const std::string& pid, int fd) {
  char buffer[512];
  const std::string link = "/proc/" + pid + "/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

// Every open fd of `pid` with its target.
std::vector<std::pair<int, std::string>> open_fds(const std::string& pid) {
  std::vector<std::pair<int, std::string>> fds;
  for (const auto& name : test_support::list_dir("/proc/" + pid + "/fd")) {
    const int fd = std::stoi(name);
    std::string target = fd_target(pid, fd);
    if (!target.empty()) fds.emplace_back(fd, std::move(target));  // else the listing's own, closed since
  }
  return fds;
}

// In a worker: writes to the kept fd, then lists its fds ("N target" each) and its zygote's pid.
std::pair<std::vector<std::string>, int> worker_fds(int kept) {
  const char byte = 'k';
  const bool written = ::write(kept, &byte, 1) == 1;
  std::vector<std::string> out;
  for (const auto& [fd, target] : open_fds("self")) out.push_back(std::to_string(fd) + " " + target);
  if (!written) out.push_back("write to the kept fd failed");
  return {out, static_cast<int>(::getppid())};
}

bool eof_within(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  char byte = 0;
  return ::read(fd, &byte, 1) == 0;
}

}  // namespace

TEST_CASE("hygiene - workers start with every signal at its default and none blocked" * doctest::timeout(60)) {
  struct sigaction handler {};
  handler.sa_handler = parent_handler;
  sigemptyset(&handler.sa_mask);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction saved_usr1 {}, saved_term {}, saved_segv {}, saved_pipe {};
  REQUIRE(::sigaction(SIGUSR1, &handler, &saved_usr1) == 0);
  REQUIRE(::sigaction(SIGTERM, &handler, &saved_term) == 0);
  REQUIRE(::sigaction(SIGSEGV, &handler, &saved_segv) == 0);
  REQUIRE(::sigaction(SIGPIPE, &ignore, &saved_pipe) == 0);
  sigset_t blocked, saved_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR2);
  sigaddset(&blocked, SIGINT);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &blocked, &saved_mask) == 0);
  {
    // One task per worker: the first workers and their replacements.
    procpool::PoolOptions options;
    options.processes = 2;
    options.maxtasksperchild = 1;
    procpool::Pool pool(options);
    // Only the crash signals are caught, by procpool, to record the stack
    // (WorkerLost::backtrace()), and re-raised at their default.
    const std::vector<int> clean{SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, -1};
    for (int i = 0; i < 6; ++i) CHECK(pool.apply(signal_state) == clean);
    // And a worker dies of SIGTERM and SIGUSR1 as by default, not into our handler.
    auto killed = pool.apply_async([] {
      ::raise(SIGTERM);
      return 0;
    });
    CHECK_THROWS_WITH_AS(killed.get(), doctest::Contains("SIGTERM"), procpool::WorkerLost);
    // And of SIGSEGV, through procpool's handler, not ours.
    auto crashed = pool.apply_async([] {
      ::raise(SIGSEGV);
      return 0;
    });
    CHECK_THROWS_WITH_AS(crashed.get(), doctest::Contains("SIGSEGV"), procpool::WorkerLost);
  }
  CHECK(handled == 0);
  ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  ::sigaction(SIGUSR1, &saved_usr1, nullptr);
  ::sigaction(SIGTERM, &saved_term, nullptr);
  ::sigaction(SIGSEGV, &saved_segv, nullptr);
  ::sigaction(SIGPIPE, &saved_pipe, nullptr);
}

TEST_CASE("hygiene - a pipe held when the pool is built reads EOF once the parent closes it" * doctest::timeout(60)) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  procpool::Pool pool(2);
  CHECK(pool.apply([] { return 5; }) == 5);
  ::close(fds[1]);
  // Neither the zygote nor a worker holds the write end: the reader sees EOF while the pool lives.
  CHECK(eof_within(fds[0], std::chrono::seconds(10)));
  CHECK(pool.worker_pids().size() == 2);
  ::close(fds[0]);
}

TEST_CASE("hygiene - a connection accepted before the pool ends for its peer when the parent closes it" *
          doctest::timeout(60)) {
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string name = "procpool-hygiene-" + std::to_string(::getpid());
  std::copy(name.begin(), name.end(), address.sun_path + 1);  // abstract: nothing left on disk
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&address), length) == 0);
  REQUIRE(::listen(listener, 1) == 0);
  const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&address), length) == 0);
  const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(accepted >= 0);
  {
    procpool::Pool pool(2);
    CHECK(pool.apply([] { return 6; }) == 6);
    ::close(accepted);
    CHECK(eof_within(client, std::chrono::seconds(10)));
    CHECK(pool.apply([] { return 7; }) == 7);
  }
  ::close(client);
  ::close(listener);
}

TEST_CASE("hygiene - a worker holds only 0, 1, 2, keep_fds and its own socket" * doctest::timeout(60)) {
  // Unrelated fds the parent holds when it builds the pool: a file, a pipe, a socket pair.
  char path[] = "/tmp/procpool-hygiene-XXXXXX";
  const int file = ::mkstemp(path);
  REQUIRE(file >= 0);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  int kept[2];
  REQUIRE(::pipe(kept) == 0);
  std::vector<std::string> unrelated;
  // (Not kept[0]: its target is the kept end's, the same pipe.)
  for (int fd : {file, pipe_fds[0], pipe_fds[1], pair[0], pair[1]}) unrelated.push_back(fd_target("self", fd));
  const std::string kept_target = fd_target("self", kept[1]);
  {
    procpool::PoolOptions options;
    options.processes = 2;
    options.keep_fds = {kept[1]};
    procpool::Pool pool(options);
    for (int round = 0; round < 4; ++round) {
      const auto [fds, zygote] = pool.apply(worker_fds, kept[1]);
      bool found_kept = false;
      for (const std::string& entry : fds) {
        INFO("worker fd: ", entry);
        const auto space = entry.find(' ');
        REQUIRE(space != std::string::npos);
        const int fd = std::stoi(entry.substr(0, space));
        const std::string target = entry.substr(space + 1);
        CHECK(std::find(unrelated.begin(), unrelated.end(), target) == unrelated.end());
        if (fd <= 2) continue;
        if (fd == kept[1]) {
          CHECK(target == kept_target);
          found_kept = true;
          continue;
        }
        // The worker's own: its socket, a memfd.
        const bool own = target.rfind("socket:", 0) == 0 || target.rfind("/memfd:", 0) == 0 ||
                         target.rfind("anon_inode:", 0) == 0;
        CHECK(own);
      }
      CHECK(found_kept);
      char byte = 0;
      CHECK(::read(kept[0], &byte, 1) == 1);
      CHECK(byte == 'k');
      // Nor does the zygote hold them.
      for (const auto& [fd, target] : open_fds(std::to_string(zygote))) {
        INFO("zygote fd ", fd, ": ", target);
        CHECK(std::find(unrelated.begin(), unrelated.end(), target) == unrelated.end());
      }
    }
  }
  for (int fd : {file, pipe_fds[0], pipe_fds[1], pair[0], pair[1], kept[0], kept[1]}) ::close(fd);
  ::unlink(path);
}
