#include <iostream>
#include <procpool/procpool.hpp>

int square(int x) { return x * x; }

int main() {
  procpool::Pool pool(2);  // two worker processes
  std::vector<procpool::AsyncResult<int>> results;
  for (int i = 0; i < 10; ++i) results.push_back(pool.apply_async(square, i));
  for (auto& r : results) std::cout << r.get() << ' ';
  std::cout << '\n';
  try {
    pool.apply([](int x) -> int { throw std::out_of_range("no item " + std::to_string(x)); }, 7);
  } catch (const std::out_of_range& e) {
    std::cout << "out_of_range: " << e.what() << '\n';
  }
}  // ~Pool(): close() + join()
