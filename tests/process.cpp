// procpool::Process and the free functions about processes: what a child runs,
// how it ends, how it is waited for, named, signalled, closed and reaped.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <poll.h>
#include <procpool/procpool.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

#if defined(__SANITIZE_THREAD__)
// A daemon child starts a watcher thread; TSan refuses threads after a fork
// from a multi-threaded parent unless told otherwise.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
#endif

using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}

std::string read_all(int fd) {
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

void write_all(int fd, const std::string& text) {
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

// Runs `answer` in a child, which writes its result to a pipe; returns it.
template <class F>
std::string answer_of_child(F answer) {
  Pipe pipe;
  const int out = pipe.write_end();
  procpool::Process p([out, answer] { write_all(out, answer()); });
  p.start();
  pipe.close_write();
  const std::string text = read_all(pipe.read_end());
  p.join();
  CHECK(p.exitcode() == 0);
  return text;
}

std::string describe(const procpool::ProcessInfo& info) {
  return info.name + "|" + std::to_string(info.pid) + "|" + (info.daemon ? "daemon" : "-");
}

bool wait_readable(int fd, int timeout_ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}
bool readable(int fd) { return wait_readable(fd, 0); }

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

TEST_CASE("process - current_process and parent_process, in the main process and in a child" *
          doctest::timeout(30)) {
  const procpool::ProcessInfo me = procpool::current_process();
  CHECK(me.name == "MainProcess");
  CHECK(me.pid == ::getpid());
  CHECK_FALSE(me.daemon);
  CHECK_FALSE(procpool::parent_process().has_value());

  const std::string seen = answer_of_child([] {
    const auto parent = procpool::parent_process();
    return describe(procpool::current_process()) + "/" + (parent ? describe(*parent) : "none") + "/" +
           std::to_string(::getpid());
  });
  const auto first = seen.find('/');
  const auto last = seen.rfind('/');
  REQUIRE(first != std::string::npos);
  REQUIRE(last != first);
  const std::string child_pid = seen.substr(last + 1);
  CHECK(seen.substr(0, first).rfind("Process-", 0) == 0);
  CHECK(seen.substr(0, first).find("|" + child_pid + "|-") != std::string::npos);
  CHECK(seen.substr(first + 1, last - first - 1) == describe(me));
}

TEST_CASE("process - a named daemon child sees its name and daemon flag; set_daemon after start is a ValueError" *
          doctest::timeout(30)) {
  Pipe pipe;
  const int out = pipe.write_end();
  procpool::Process p([out] { write_all(out, describe(procpool::current_process())); });
  p.set_name("ghost");
  p.set_daemon(true);
  CHECK(p.daemon());
  p.start();
  pipe.close_write();
  const std::string seen = read_all(pipe.read_end());
  p.join();
  CHECK(p.exitcode() == 0);
  CHECK(seen == "ghost|" + std::to_string(*p.pid()) + "|daemon");
  CHECK_THROWS_WITH_AS(p.set_daemon(false), "procpool::Process::set_daemon: process has already been started",
                       procpool::ValueError);
  CHECK(p.daemon());
}

TEST_CASE("process - a daemon process cannot start children" * doctest::timeout(30)) {
  procpool::Process d([] {
    procpool::Process inner([] {});
    try {
      inner.start();
    } catch (const procpool::ValueError&) {
      return;
    }
    inner.join();
    throw std::runtime_error("a daemon started a child");
  });
  d.set_daemon(true);
  d.start();
  d.join();
  CHECK(d.exitcode() == 0);
}

TEST_CASE("process - a daemon child dies when its parent is killed with SIGKILL" * doctest::timeout(30)) {
  // The daemon is reparented to us once the helper is gone, so we can reap it.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  Pipe pipe;
  std::fflush(nullptr);
  const pid_t helper = ::fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    procpool::Process daemon(sleep_forever);
    daemon.set_daemon(true);
    daemon.start();
    const pid_t pid = *daemon.pid();
    if (::write(pipe.write_end(), &pid, sizeof pid) != sizeof pid) ::_exit(1);
    sleep_forever();
  }
  pipe.close_write();
  pid_t daemon = 0;
  REQUIRE(::read(pipe.read_end(), &daemon, sizeof daemon) == sizeof daemon);
  CHECK(test_support::alive(daemon));
  ::kill(helper, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(helper, &status, 0) == helper);
  CHECK(WIFSIGNALED(status));

  const bool reaped = test_support::eventually([&] { return ::waitpid(daemon, &status, WNOHANG) == daemon; }, 1s);
  CHECK(reaped);
  if (reaped) {
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
  } else {
    ::kill(daemon, SIGKILL);
    ::waitpid(daemon, &status, 0);
  }
  CHECK(test_support::proc_state(daemon).empty());
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("process - a daemon outlives the thread that started it" * doctest::timeout(30)) {
  procpool::Process d(sleep_forever);
  d.set_daemon(true);
  std::thread([&] { d.start(); }).join();
  std::this_thread::sleep_for(300ms);
  CHECK(d.is_alive());
  CHECK(test_support::alive(*d.pid()));
  d.kill();
  d.join();
  CHECK(d.exitcode() == -SIGKILL);
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

TEST_CASE("process - active_children lists live children and reaps finished ones" * doctest::timeout(30)) {
  procpool::Process sleeper(sleep_forever);
  procpool::Process quitter([] { std::exit(3); });
  sleeper.start();
  quitter.start();
  const pid_t quitter_pid = *quitter.pid();
  REQUIRE(wait_readable(quitter.sentinel()));
  CHECK(test_support::proc_state(quitter_pid) == "Z");
  const auto children = procpool::active_children();
  CHECK(children == std::vector<pid_t>{*sleeper.pid()});
  CHECK(test_support::proc_state(quitter_pid).empty());  // reaped: no zombie
  // The Process still knows how its child ended.
  CHECK(quitter.exitcode() == 3);
  CHECK(quitter.join(0s));
  sleeper.terminate();
  sleeper.join();
  CHECK(procpool::active_children().empty());
  for (pid_t pid : test_support::children_of(::getpid())) CHECK(test_support::proc_state(pid) != "Z");
}

TEST_CASE("process - a three-level tree: a child's children are named Process-N:1 and know their parent" *
          doctest::timeout(60)) {
  Pipe pipe;
  const int out = pipe.write_end();
  // Each level reports "its name|its pid|its parent's name|its parent's pid" and starts the next.
  auto report = [out] {
    const auto me = procpool::current_process();
    const auto parent = procpool::parent_process();
    write_all(out, me.name + "|" + std::to_string(me.pid) + "|" + (parent ? parent->name : "none") + "|" +
                       (parent ? std::to_string(parent->pid) : "0") + "\n");
  };
  procpool::Process top([report] {
    report();
    procpool::Process middle([report] {
      report();
      procpool::Process bottom([report] {
        report();
        std::exit(7);
      });
      bottom.start();
      bottom.join();
      std::exit(bottom.exitcode() == 7 ? 5 : 100);
    });
    middle.start();
    middle.join();
    std::exit(middle.exitcode() == 5 ? 3 : 101);
  });
  top.start();
  pipe.close_write();
  const std::string lines = read_all(pipe.read_end());
  top.join();
  CHECK(top.exitcode() == 3);

  // name, pid, parent's name, parent's pid of each level, top first.
  std::vector<std::vector<std::string>> levels;
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::istringstream split(line);
    for (std::string field; std::getline(split, field, '|');) fields.push_back(field);
    REQUIRE(fields.size() == 4);
    levels.push_back(fields);
  }
  REQUIRE(levels.size() == 3);
  const std::string n = top.name();
  const std::string main_pid = std::to_string(::getpid());
  CHECK(levels[0] == std::vector<std::string>{n, std::to_string(*top.pid()), "MainProcess", main_pid});
  CHECK(levels[1][0] == n + ":1");
  CHECK(levels[1][2] == n);
  CHECK(levels[1][3] == levels[0][1]);
  CHECK(levels[2][0] == n + ":1:1");
  CHECK(levels[2][2] == n + ":1");
  CHECK(levels[2][3] == levels[1][1]);
}

TEST_CASE("process - a child can build and use a Pool of its own" * doctest::timeout(60)) {
  procpool::Process p([] {
    int result = 0;
    {
      procpool::Pool pool(2);
      result = pool.apply(square, 7);
    }
    std::exit(result);
  });
  p.start();
  p.join();
  CHECK(p.exitcode() == 49);
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
