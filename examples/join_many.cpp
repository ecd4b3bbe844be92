// The note's p1..p4: four children sleep for different times and the parent
// joins them one after another. join() only makes the parent wait; the
// children still run at the same time, so the total is the longest sleep,
// not the sum: while p1.join() waits, p2..p4 finish, and their joins return
// at once.
#include <procpool/procpool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace {

void task(const std::string& name, double seconds) {
  std::cout << name << " is running (sleeps " << seconds << " s)\n";
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  std::cout << name << " is done\n";
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  // Whole lines at a time: children's lines do not mix, and nothing unflushed
  // is copied into a child by fork().
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  std::cout << std::fixed << std::setprecision(3);

  // p1 sleeps longest, so by the time its join returns the others are done.
  const std::vector<double> sleeps{0.4, 0.3, 0.2, 0.1};
  const auto start = std::chrono::steady_clock::now();

  std::vector<std::unique_ptr<procpool::Process>> children;
  for (std::size_t i = 0; i < sleeps.size(); ++i) {
    // Appending, not "p" + std::to_string(...): g++ 12 at -O3 misreads the
    // latter's inlined insert() as an overlapping copy (a -Wrestrict false positive).
    std::string name = "p";
    name += std::to_string(i + 1);
    children.push_back(std::make_unique<procpool::Process>(task, name, sleeps[i]));
    children.back()->start();
  }
  for (std::size_t i = 0; i < children.size(); ++i) {
    children[i]->join();
    std::cout << "p" << i + 1 << ".join() returned after " << seconds_since(start) << " s\n";
  }
  const double total = seconds_since(start);

  std::cout << "main...\n";
  for (const auto& child : children) {
    std::cout << child->name() << ": pid " << *child->pid() << ", exitcode " << *child->exitcode() << '\n';
  }
  std::cout << "total elapsed: " << total << " s (longest child " << *std::max_element(sleeps.begin(), sleeps.end())
            << " s, sum of the sleeps " << std::accumulate(sleeps.begin(), sleeps.end(), 0.0) << " s)\n";
}
