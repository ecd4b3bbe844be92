// The note's Pool example: a Process cannot hand back a result, a Pool can.
// Two workers square 0..9, each task taking a while; close() says no more
// tasks are coming, join() waits for the workers, and get() reads the results.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <thread>
#include <vector>

namespace {

int test(int p) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return p * p;
}

}  // namespace

int main() {
  // Whole lines at a time.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  const auto start = std::chrono::steady_clock::now();
  std::vector<procpool::AsyncResult<int>> res_lst;
  procpool::Pool pool(2);
  for (int i = 0; i < 10; ++i) res_lst.push_back(pool.apply_async(test, i));
  pool.close();
  pool.join();
  for (auto& result : res_lst) std::cout << result.get() << '\n';

  // Ten 0.1 s tasks on two workers: about 0.5 s, not 1 s.
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::cout << std::fixed << std::setprecision(3) << "elapsed: " << elapsed.count() << " s\n";
}
