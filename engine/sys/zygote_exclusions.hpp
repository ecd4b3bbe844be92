// Shared memory that the zygote (and so every worker) must not inherit: a
// SharedArray made before a pool would otherwise stay mapped, and its memfd
// open, in the zygote and its workers until the pool ends, long after the
// parent dropped it. (Process children, direct forks, do inherit it.)
#pragma once

#include <cstddef>

namespace procpool::detail {

// Registers [addr, addr + size) (may be empty) and `fd` (-1: none) while they live. Thread-safe.
void add_zygote_exclusion(void* addr, std::size_t size, int fd);
// Unregisters what add_zygote_exclusion(addr, ..., fd) registered. Thread-safe.
void remove_zygote_exclusion(void* addr, int fd) noexcept;
// Registers a mapping (no fd) for as long as it lives.
class ZygoteExclusion {
 public:
  ZygoteExclusion(void* addr, std::size_t size) : addr_(addr) { add_zygote_exclusion(addr, size, -1); }
  ZygoteExclusion(const ZygoteExclusion&) = delete;
  ZygoteExclusion& operator=(const ZygoteExclusion&) = delete;
  ~ZygoteExclusion() { remove_zygote_exclusion(addr_, -1); }

 private:
  void* addr_;
};

// In a new zygote: unmaps and closes everything registered. Never blocks
// (skips the work if the fork caught another thread registering).
void drop_zygote_exclusions() noexcept;

}  // namespace procpool::detail
