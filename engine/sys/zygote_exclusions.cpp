#include "engine/sys/zygote_exclusions.hpp"

#include <map>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>
#include <utility>

namespace procpool::detail {

namespace {

struct Exclusions {
  std::mutex mutex;
  std::map<std::pair<void*, int>, std::size_t> ranges;  // (addr, fd) -> size
};

Exclusions& exclusions() {
  static auto* e = new Exclusions;  // never destroyed: blocks may die during static destruction
  return *e;
}

}  // namespace

void add_zygote_exclusion(void* addr, std::size_t size, int fd) {
  Exclusions& e = exclusions();
  std::lock_guard lock(e.mutex);
  e.ranges[{addr, fd}] = size;
}

void remove_zygote_exclusion(void* addr, int fd) noexcept {
  Exclusions& e = exclusions();
  std::lock_guard lock(e.mutex);
  e.ranges.erase({addr, fd});
}

void drop_zygote_exclusions() noexcept {
  Exclusions& e = exclusions();
  // The fork copied the lock as it was: held by a thread that no longer exists here, or free.
  std::unique_lock lock(e.mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;
  for (const auto& [key, size] : e.ranges) {
    if (key.first != nullptr && size != 0) ::munmap(key.first, size);
    if (key.second >= 0) ::close(key.second);
  }
  e.ranges.clear();
}

}  // namespace procpool::detail
