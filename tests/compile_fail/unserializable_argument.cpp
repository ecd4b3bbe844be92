// Must not compile: the argument type has no cereal serialization.
#include <procpool/procpool.hpp>

struct Opaque {
  int handle = 0;
};
int use(Opaque o) { return o.handle; }

int main() {
  procpool::Pool pool(1);
  return pool.apply(use, Opaque{});
}
