// Must not compile: the result type has no cereal serialization.
#include <procpool/procpool.hpp>

struct Opaque {
  int handle = 0;
};
Opaque make(int h) { return Opaque{h}; }

int main() {
  procpool::Pool pool(1);
  return pool.apply(make, 1).handle;
}
