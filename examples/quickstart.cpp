#include <iostream>
#include <procpool/procpool.hpp>
#include <unistd.h>

int square(int x) { return x * x; }

int main() {
  procpool::Pool pool(2);
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
  for (auto& r : results) std::cout << r.get() << ' ';
  std::cout << '\n';

  auto pid = pool.apply_async([] { return ::getpid(); }).get();
  std::cout << "ran in worker " << (pid != ::getpid() ? "process" : "???") << '\n';
  try {
    pool.apply([](int x) -> int { throw std::out_of_range("index " + std::to_string(x)); }, 7);
  } catch (const std::out_of_range& e) {
    std::cout << "out_of_range: " << e.what() << '\n';
  }
  pool.close();
  pool.join();
}
