// procpool::Process among processes: current_process and parent_process,
// daemons, active_children, a tree of children and a Pool inside a child.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <procpool/procpool.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "process_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::Pipe;
using test_support::read_all;
using test_support::sleep_forever;
using test_support::wait_readable;
using test_support::write_all;

namespace {

int square(int x) { return x * x; }

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

}  // namespace

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
