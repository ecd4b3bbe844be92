// A process's name: "Process-1" by default, changed with set_name() before
// start(); the child sees the new name through current_process().
#include <procpool/procpool.hpp>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

namespace {

// time.asctime(time.localtime()), as the note prints it.
std::string new_time() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::ostringstream out;
  out << std::put_time(&local, "%a %b %e %H:%M:%S %Y");
  return out.str();
}

void func(int x, int y) {
  std::cout << x + y << '\n';
  std::cout << "func_start " << new_time() << " in " << procpool::current_process().name << '\n';
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::cout << "func_end " << new_time() << '\n';
}

}  // namespace

int main() {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  std::cout << "main_start " << new_time() << '\n';
  procpool::Process p1(func, 1, 2);
  std::cout << p1.name() << '\n';
  p1.set_name("Process No. 1");
  std::cout << p1.name() << '\n';
  p1.start();
  // The note sleeps as long as the child runs; join() waits exactly that long.
  p1.join();
  std::cout << "main_end " << new_time() << '\n';
}
