// Who is who: the child asks the OS (getpid, getppid) and procpool
// (current_process, parent_process); the parent prints its own pid.
#include <procpool/procpool.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

void func(const std::string& name) {
  std::cout << "hello " << name << '\n';
  std::cout << "I am the child: " << getpid() << "; my parent is: " << getppid() << '\n';

  const procpool::ProcessInfo me = procpool::current_process();
  std::cout << "current_process(): " << me.name << " pid " << me.pid << '\n';
  if (const auto parent = procpool::parent_process()) {
    std::cout << "parent_process(): " << parent->name << " pid " << parent->pid << '\n';
  } else {
    std::cout << "parent_process(): none\n";
  }
}

}  // namespace

int main() {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  procpool::Process p(func, std::string("xiaobai"));
  p.start();
  std::cout << "I am the parent: " << getpid() << '\n';
  std::cout << "current_process(): " << procpool::current_process().name << '\n';
}  // As in Python, the end of main waits for a non-daemon child: ~Process joins it.
