// Processes do not share memory: the child starts with a copy of the parent's
// n = 100, and setting its copy to 0 leaves the parent's n alone.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <iostream>

namespace {

int n = 100;

void task() {
  n = 0;
  std::cout << "in the child: n = " << n << '\n';
}

}  // namespace

int main() {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  procpool::Process p(task);
  p.start();
  p.join();
  std::cout << "in the main process: n = " << n << '\n';
}
