// A process's life: no pid and not alive before start(), alive after it;
// terminate() (SIGTERM) ends it early, and exitcode() then says -15, minus
// the signal's number. kill() does the same with SIGKILL: -9.
#include <procpool/procpool.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

namespace {

void task(const std::string& name) {
  std::cout << name << " start... " << procpool::current_process().pid << '\n';
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::cout << name << " over... " << procpool::current_process().pid << '\n';
}

std::string describe(const std::optional<pid_t>& pid) { return pid ? std::to_string(*pid) : "none"; }

}  // namespace

int main() {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  std::cout << std::boolalpha;

  procpool::Process p(task, std::string("neo"));
  std::cout << "before start: pid " << describe(p.pid()) << ", is_alive() " << p.is_alive() << '\n';
  p.start();
  std::cout << "after start: pid " << describe(p.pid()) << ", is_alive() " << p.is_alive() << '\n';
  // Let the child print its first line, so it is stopped in the middle of its task.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p.terminate();
  // The note sleeps 1 s here; join() waits exactly until the child is gone.
  p.join();
  std::cout << "after terminate: is_alive() " << p.is_alive() << '\n';
  std::cout << "exitcode: " << *p.exitcode() << " (SIGTERM is " << SIGTERM << ")\n";

  procpool::Process q(task, std::string("trinity"));
  q.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  q.kill();
  q.join();
  std::cout << "after kill: is_alive() " << q.is_alive() << '\n';
  std::cout << "exitcode: " << *q.exitcode() << " (SIGKILL is " << SIGKILL << ")\n";

  std::cout << "main process " << getpid() << '\n';
  std::cout << "main's parent " << getppid() << '\n';
}
