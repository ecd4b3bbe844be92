// A long map with a progress bar: a few thousand ~1 ms tasks on two workers.
//   progress_bar [ITEMS [MS_PER_ITEM]] [--imap]
// The bar goes to stderr, redrawn in place when stderr is a terminal; else
// one summary line. --imap: the same over imap_unordered, waited for first.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <procpool/procpool.hpp>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

long work(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // stands for ~1 ms of real work
  return static_cast<long>(x) * x;
}

int main(int argc, char** argv) {
  int items = 4000;
  int ms = 1;
  bool imap = false;
  std::vector<int> numbers;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--imap") {
      imap = true;
    } else {
      numbers.push_back(std::atoi(arg.c_str()));
    }
  }
  if (!numbers.empty()) items = numbers[0];
  if (numbers.size() > 1) ms = numbers[1];

  procpool::Pool pool(2);
  std::vector<std::pair<int, int>> args;
  for (int x = 0; x < items; ++x) args.emplace_back(x, ms);
  long sum = 0;
  if (imap) {
    auto results = pool.imap_unordered([](std::pair<int, int> a) { return work(a.first, a.second); },
                                       std::views::all(args), 10);
    procpool::wait_with_progress(results);  // every result arrives; none is consumed yet
    for (long v : results) sum += v;
  } else {
    auto result = pool.starmap_async(work, args, 10);  // chunks of 10: the bar moves smoothly
    procpool::wait_with_progress(result);             // to std::cerr
    const auto squares = result.get();
    sum = std::accumulate(squares.begin(), squares.end(), 0L);
  }
  std::cout << "sum of squares below " << items << ": " << sum << '\n';
}
