// Daemon or not: by default the parent ends and takes its daemon child with
// it, so the child's later lines never appear. With --no-daemon the child is
// an ordinary one and the parent waits for it with join().
//
//   daemon               # "main end", then nothing more from the child
//   daemon --no-daemon   # the child's ten rounds, then "parent ends"
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string_view>
#include <thread>

namespace {

constexpr int rounds = 10;

void work1() {
  for (int i = 1; i <= rounds; ++i) {
    std::cout << "running work1 (" << i << '/' << rounds << ")\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::cout << "work1 end (" << i << '/' << rounds << ")\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  const bool daemon = argc < 2;
  if (argc > 2 || (argc == 2 && std::string_view(argv[1]) != "--no-daemon")) {
    std::cerr << "usage: " << argv[0] << " [--no-daemon]\n";
    return 2;
  }

  procpool::Process p(work1);
  if (daemon) {
    p.set_daemon(true);  // before start(), as in Python
    p.start();
    std::cout << "daemon child " << p.name() << " pid " << *p.pid() << '\n';
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    std::cout << "main end\n";
    return 0;  // ~Process kills a daemon child: it ends with main
  }

  p.start();
  std::cout << "parent runs\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  std::cout << "parent blocks, waiting for the child\n";
  p.join();
  std::cout << "parent ends\n";
}
