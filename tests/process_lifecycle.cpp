// procpool::Process, one child from construction to close: what it runs,
// how it ends, how it is waited for, signalled, closed and reaped.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <procpool/procpool.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>

#include "process_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::Pipe;
using test_support::read_all;
using test_support::readable;
using test_support::sleep_forever;
using test_support::wait_readable;

namespace {

class Squarer : public procpool::Process {
 public:
  explicit Squarer(int x) : x_(x) {}
  void run() override { std::exit(x_ * x_); }

 private:
  int x_;
};

}  // namespace

TEST_CASE("process - default names count up as Process-N, and set_name renames") {
  procpool::Process a;
  procpool::Process b;
  REQUIRE(a.name().rfind("Process-", 0) == 0);
  const int n = std::stoi(a.name().substr(8));
  CHECK(n >= 1);
  CHECK(b.name() == "Process-" + std::to_string(n + 1));
  a.set_name("worker");
  CHECK(a.name() == "worker");
  CHECK_FALSE(a.daemon());
}

TEST_CASE("process - before start: no pid, no exit code, not alive, and waiting or signalling is misuse") {
  procpool::Process p([] {});
  CHECK_FALSE(p.pid().has_value());
  CHECK_FALSE(p.exitcode().has_value());
  CHECK_FALSE(p.is_alive());
  CHECK_THROWS_AS(p.join(), procpool::ValueError);
  CHECK_THROWS_AS(p.join(10ms), procpool::ValueError);
  CHECK_THROWS_AS(p.terminate(), procpool::ValueError);
  CHECK_THROWS_AS(p.kill(), procpool::ValueError);
  CHECK_THROWS_WITH_AS(p.sentinel(), "procpool::Process::sentinel: process has not been started",
                       procpool::ValueError);
}

TEST_CASE("process - exitcode is 0 when run returns, and the child ran the target with copies of its arguments" *
          doctest::timeout(30)) {
  std::string word = "before";
  int number = 3;
  procpool::Process p(
      [](const std::string& w, int n) {
        if (w != "before" || n != 3) throw std::runtime_error("wrong arguments");
      },
      word, number);
  word = "after";
  number = 4;
  p.start();
  REQUIRE(p.pid().has_value());
  CHECK(*p.pid() != ::getpid());
  p.join();
  CHECK(p.exitcode() == 0);
  CHECK_FALSE(p.is_alive());
  p.join();  // joining again returns at once
  CHECK(p.exitcode() == 0);
}

TEST_CASE("process - exitcode is 1 when run throws, and the error goes to stderr" * doctest::timeout(30)) {
  procpool::Process p([] { throw std::invalid_argument("bad input 42"); });
  p.set_name("thrower");
  Pipe pipe;
  const int saved = ::dup(2);
  REQUIRE(saved >= 0);
  ::dup2(pipe.write_end(), 2);
  p.start();
  ::dup2(saved, 2);
  ::close(saved);
  pipe.close_write();
  const std::string err = read_all(pipe.read_end());
  p.join();
  CHECK(p.exitcode() == 1);
  CHECK(err.find("Process thrower:") != std::string::npos);
  CHECK(err.find("std::invalid_argument: bad input 42") != std::string::npos);
}

TEST_CASE("process - exitcode is n for std::exit(n)" * doctest::timeout(30)) {
  procpool::Process p([] { std::exit(7); });
  p.start();
  p.join();
  CHECK(p.exitcode() == 7);
}

TEST_CASE("process - exitcode is -N for a child ended by signal N" * doctest::timeout(30)) {
  procpool::Process killed(sleep_forever);
  procpool::Process terminated(sleep_forever);
  killed.start();
  terminated.start();
  CHECK(killed.is_alive());
  CHECK_FALSE(killed.exitcode().has_value());
  killed.kill();
  terminated.terminate();
  killed.join();
  terminated.join();
  CHECK(killed.exitcode() == -SIGKILL);
  CHECK(terminated.exitcode() == -SIGTERM);
  // Signalling a child that has been reaped does nothing.
  killed.kill();
  terminated.terminate();
  CHECK(killed.exitcode() == -SIGKILL);
}

TEST_CASE("process - join with a timeout returns false soon while the child runs, true once it has exited" *
          doctest::timeout(30)) {
  procpool::Process p([] { std::this_thread::sleep_for(10s); });
  p.start();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(p.join(100ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 100ms);
  CHECK(waited < 2s);
  CHECK_FALSE(p.join(0s));
  CHECK(p.is_alive());
  p.terminate();
  CHECK(p.join(5s));
  CHECK(p.exitcode() == -SIGTERM);
  CHECK(p.join(std::chrono::hours::max()));

  procpool::Process quick([] {});
  quick.start();
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(quick.join(std::chrono::duration<double>(10.0)));
  CHECK(std::chrono::steady_clock::now() - t1 < 5s);
  CHECK(quick.exitcode() == 0);
}

TEST_CASE("process - is_alive reaps an exited child, leaving no zombie" * doctest::timeout(30)) {
  procpool::Process p([] {});
  p.start();
  const pid_t pid = *p.pid();
  // Exited, not yet reaped: a zombie. (Its main thread shows "Z" earlier, while other threads still exit.)
  REQUIRE(wait_readable(p.sentinel()));
  CHECK(test_support::proc_state(pid) == "Z");
  CHECK_FALSE(p.is_alive());
  CHECK(test_support::proc_state(pid).empty());
  CHECK(p.exitcode() == 0);
}

TEST_CASE("process - starting twice is a ValueError" * doctest::timeout(30)) {
  procpool::Process p([] {});
  p.start();
  CHECK_THROWS_WITH_AS(p.start(), "procpool::Process::start: process has already been started",
                       procpool::ValueError);
  p.join();
  CHECK_THROWS_AS(p.start(), procpool::ValueError);
}

TEST_CASE("process - buffered stdio is flushed before the fork, so it is written once" * doctest::timeout(30)) {
  std::FILE* file = std::tmpfile();
  REQUIRE(file != nullptr);
  std::fputs("once\n", file);
  procpool::Process p([] {});
  p.start();
  p.join();
  std::fflush(file);
  std::rewind(file);
  char line[64] = {};
  std::string content;
  while (std::fgets(line, sizeof line, file) != nullptr) content += line;
  std::fclose(file);
  CHECK(content == "once\n");
}

TEST_CASE("process - sentinel becomes readable once the child has exited" * doctest::timeout(30)) {
  Pipe go;
  const int gate = go.read_end();
  const int opener = go.write_end();
  procpool::Process p([gate, opener] {
    ::close(opener);  // or our own copy would keep the gate shut
    char c;
    while (::read(gate, &c, 1) < 0 && errno == EINTR) {
    }
  });
  p.start();
  const int fd = p.sentinel();
  CHECK(fd >= 0);
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(readable(fd));
  go.close_write();  // lets the child finish
  CHECK(wait_readable(fd));
  CHECK(p.exitcode() == 0);  // readable means it can be reaped at once
  p.join();
  CHECK(p.exitcode() == 0);
  CHECK(p.sentinel() == fd);
}

TEST_CASE("process - close: a ValueError while alive; afterwards most calls are ValueErrors, name still works" *
          doctest::timeout(30)) {
  const std::size_t fds_before = test_support::open_fd_count();
  procpool::Process p(sleep_forever);
  p.start();
  CHECK(test_support::open_fd_count() == fds_before + 1);  // the sentinel
  CHECK_THROWS_AS(p.close(), procpool::ValueError);
  p.kill();
  p.join();
  p.close();
  p.close();  // twice is fine
  CHECK(test_support::open_fd_count() == fds_before);
  CHECK_THROWS_WITH_AS(p.start(), "procpool::Process::start: process is closed", procpool::ValueError);
  CHECK_THROWS_WITH_AS(p.join(), "procpool::Process::join: process is closed", procpool::ValueError);
  CHECK_THROWS_AS(p.join(1s), procpool::ValueError);
  CHECK_THROWS_WITH_AS((void)p.is_alive(), "procpool::Process::is_alive: process is closed", procpool::ValueError);
  CHECK_THROWS_AS(p.terminate(), procpool::ValueError);
  CHECK_THROWS_AS(p.kill(), procpool::ValueError);
  CHECK_THROWS_AS((void)p.sentinel(), procpool::ValueError);
  CHECK_THROWS_AS((void)p.exitcode(), procpool::ValueError);
  CHECK_THROWS_AS((void)p.pid(), procpool::ValueError);
  CHECK_THROWS_AS(p.set_daemon(true), procpool::ValueError);
  CHECK(p.name().rfind("Process-", 0) == 0);

  procpool::Process never([] {});
  never.close();
  CHECK_THROWS_WITH_AS(never.start(), "procpool::Process::start: process is closed", procpool::ValueError);
}

TEST_CASE("process - a subclass's run() is what the child runs" * doctest::timeout(30)) {
  Squarer s(5);
  s.start();
  s.join();
  CHECK(s.exitcode() == 25);
}

TEST_CASE("process - only the process that started a child may wait for it" * doctest::timeout(30)) {
  procpool::Process sibling(sleep_forever);
  sibling.start();
  procpool::Process probe([&sibling] {
    try {
      (void)sibling.is_alive();
    } catch (const procpool::ValueError&) {
      return;
    }
    throw std::runtime_error("no ValueError");
  });
  probe.start();
  probe.join();
  CHECK(probe.exitcode() == 0);
  sibling.kill();
  sibling.join();
}

TEST_CASE("process - destructors join non-daemon children and kill daemon ones, leaving no zombie" *
          doctest::timeout(30)) {
  pid_t quick = 0;
  pid_t daemon = 0;
  {
    procpool::Process a([] { std::this_thread::sleep_for(200ms); });
    procpool::Process d(sleep_forever);
    procpool::Process unstarted([] {});
    d.set_daemon(true);
    a.start();
    d.start();
    quick = *a.pid();
    daemon = *d.pid();
  }
  CHECK(test_support::proc_state(quick).empty());
  CHECK(test_support::proc_state(daemon).empty());
  CHECK(procpool::active_children().empty());
  for (pid_t pid : test_support::children_of(::getpid())) CHECK(test_support::proc_state(pid) != "Z");
}
