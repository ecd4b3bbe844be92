// The out-of-tree program of the consumer tests (run_all.sh): the same file is
// built against an installed procpool with pkg-config and with CMake, and
// against procpool as a meson subproject.
#include <iostream>
#include <string>
#include <vector>

#include <procpool/procpool.hpp>

int square(int x) { return x * x; }

int main() {
  std::cout << "procpool " << PROCPOOL_VERSION_STRING << " (" << PROCPOOL_VERSION_MAJOR << '.'
            << PROCPOOL_VERSION_MINOR << '.' << PROCPOOL_VERSION_PATCH << ")\n";
  procpool::Pool pool(2);
  for (int v : pool.map(square, std::vector<int>{1, 2, 3, 4})) std::cout << v << ' ';
  std::cout << '\n';
  std::cout << pool.apply([](const std::string& s) { return s + '!'; }, std::string("done")) << '\n';
}
