#include "engine/ipc/payload_arenas.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/sys/constants.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

constexpr std::size_t smallest_arena = std::size_t{64} << 20;

std::size_t page_rounded(std::size_t n) { return (n + page_size - 1) / page_size * page_size; }

}  // namespace

PayloadArenas::PayloadArenas(int workers, std::size_t task_bytes, std::size_t result_bytes) : workers_(workers) {
  task_bytes = page_rounded(task_bytes);
  result_bytes = page_rounded(result_bytes);
  for (;;) {
    size_ = task_bytes + static_cast<std::size_t>(workers) * result_bytes;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      base_ = static_cast<char*>(p);
      break;
    }
    if (task_bytes <= smallest_arena && result_bytes <= smallest_arena) {
      throw Error(std::string("procpool::Pool: cannot reserve shared memory for large payloads: ") +
                  std::strerror(errno));
    }
    // Refused: strict overcommit (MAP_NORESERVE ignored) or little address
    // space. Settle for small arenas rather than take the system's whole
    // commit limit; larger payloads then go in memfds of their own.
    task_bytes = std::min(task_bytes, smallest_arena);
    result_bytes = std::min(result_bytes, smallest_arena);
  }
  task_bytes_ = task_bytes;
  result_bytes_ = result_bytes;
  // Reserved, mostly untouched address space: keep it out of core dumps.
  ::madvise(base_, size_, MADV_DONTDUMP);
}

PayloadArenas::~PayloadArenas() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

std::span<char> PayloadArenas::results(int worker) const noexcept {
  return {base_ + task_bytes_ + static_cast<std::size_t>(worker) * result_bytes_, result_bytes_};
}

void PayloadArenas::restrict_to(int worker) const noexcept {
  ::mprotect(base_, task_bytes_, PROT_READ);
  for (int other = 0; other < workers_; ++other) {
    if (other != worker) ::mprotect(results(other).data(), result_bytes_, PROT_NONE);
  }
}

void PayloadArenas::forget(char* data, std::size_t size) noexcept {
  // Whole pages inside the range only: its neighbours may be in use.
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page_size - 1) / page_size * page_size;
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + size) / page_size * page_size;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_REMOVE);
}

void PayloadArenas::populate(char* data, std::size_t size) noexcept {
#ifdef MADV_POPULATE_WRITE
  const auto begin = reinterpret_cast<std::uintptr_t>(data) / page_size * page_size;
  const auto end = page_rounded(reinterpret_cast<std::uintptr_t>(data) + size);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);  // < 5.14: faults later
#else
  (void)data;
  (void)size;
#endif
}

}  // namespace procpool::detail
