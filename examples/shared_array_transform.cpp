// A parallel prefix sum over a large SharedArray<float>, in place: the
// workers write their slices straight into the parent's memory, nothing is
// copied. Pass 1 sums each slice in place (a local prefix sum) and returns
// its total; pass 2 adds to each slice the totals of the slices before it.
//   shared_array_transform [elements]   (default 16 Mi)
#include <procpool/procpool.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

namespace {

// The value at index i: small, so float sums stay close to the exact ones.
float input(std::size_t i) { return static_cast<float>(i % 7) * 0.25f; }

double local_prefix_sum(procpool::SharedArray<float> slice) {
  double sum = 0;
  for (float& x : slice) {
    sum += x;
    x = static_cast<float>(sum);
  }
  return sum;
}

void add_offset(procpool::SharedArray<float> slice, double offset) {
  for (float& x : slice) x = static_cast<float>(x + offset);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t{16} << 20;
  procpool::Pool pool;
  procpool::SharedArray<float> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = input(i);

  // A few slices per worker: each task gets a handle to its slice, not the floats.
  const std::size_t slices = static_cast<std::size_t>(4 * pool.size());
  const std::size_t per_slice = (n + slices - 1) / slices;
  std::vector<procpool::SharedArray<float>> parts;
  for (std::size_t first = 0; first < n; first += per_slice) {
    parts.push_back(data.subspan(first, std::min(per_slice, n - first)));
  }
  const std::vector<double> totals = pool.map(local_prefix_sum, parts, 1);
  std::vector<std::tuple<procpool::SharedArray<float>, double>> shifts;
  double before = 0;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    shifts.emplace_back(parts[k], before);
    before += totals[k];
  }
  pool.starmap(add_offset, shifts, 1);

  // Checked here against a serial prefix sum in double.
  double exact = 0;
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    exact += input(i);
    worst = std::max(worst, std::abs(data[i] - exact) / std::max(1.0, exact));
  }
  std::printf("elements: %zu in %zu slices on %d workers\n", n, parts.size(), pool.size());
  std::printf("last prefix sum: %.0f (exact %.0f)\n", n == 0 ? 0.0 : static_cast<double>(data[n - 1]), exact);
  std::printf("max relative error: %.2g\n", worst);
  std::printf("%s\n", worst < 1e-6 ? "ok" : "MISMATCH");
  return worst < 1e-6 ? 0 : 1;
}
