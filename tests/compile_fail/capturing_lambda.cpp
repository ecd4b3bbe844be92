// Must not compile: a capturing lambda cannot be sent to another process.
#include <procpool/procpool.hpp>

int main() {
  procpool::Pool pool(1);
  int offset = 3;
  return pool.apply([offset](int x) { return x + offset; }, 1);
}
