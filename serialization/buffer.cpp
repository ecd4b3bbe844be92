#include "procpool/detail/buffer.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <cstdlib>
#include <new>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

constexpr std::size_t initial_heap = 4096;
constexpr std::size_t initial_memfd = std::size_t{1} << 20;

std::size_t grown(std::size_t current, std::size_t needed) {
  std::size_t capacity = current < initial_heap ? initial_heap : current;
  while (capacity < needed) capacity *= 2;
  return capacity;
}

// A memfd grows to what is needed, or double, whichever is more: one large
// write (a big vector) then fills it exactly instead of leaving half of it
// allocated and unused.
std::size_t grown_memfd(std::size_t current, std::size_t needed) {
  constexpr std::size_t page = 4096;
  const std::size_t capacity = std::max({needed, 2 * current, initial_memfd});
  return (capacity + page - 1) / page * page;
}

// Faults the pages in with one system call rather than one fault each, which
// is most of the cost of a large payload on machines where a fault is dear.
void populate(char* begin, std::size_t size) noexcept {
#ifdef MADV_POPULATE_WRITE
  if (size != 0) ::madvise(begin, size, MADV_POPULATE_WRITE);  // a kernel without it (< 5.14) just faults
#else
  (void)begin;
  (void)size;
#endif
}

}  // namespace

OutputBuffer::~OutputBuffer() { free_storage(); }

void OutputBuffer::free_storage() noexcept {
  if (storage_ == Storage::heap) {
    std::free(begin_);
  } else if (storage_ == Storage::memfd) {
    ::munmap(begin_, static_cast<std::size_t>(end_ - begin_));
    if (memfd_ >= 0) ::close(memfd_);
  }
  memfd_ = -1;
  storage_ = Storage::window;
  begin_ = cur_ = end_ = nullptr;
}

void OutputBuffer::reset(char* window, std::size_t capacity, std::size_t spill_limit) noexcept {
  spill_limit_ = spill_limit;
  if (window == nullptr && storage_ == Storage::heap) {
    cur_ = begin_;  // keep the heap block: the next task reuses it without allocating
    return;
  }
  free_storage();
  begin_ = cur_ = window;
  end_ = window == nullptr ? nullptr : window + capacity;
}

int OutputBuffer::release_memfd() noexcept {
  // Unmapped and sealed before it leaves: the receiver can then trust its
  // size and content (a peer that could shrink it could make our reads fault).
  if (storage_ != Storage::memfd) return -1;
  const int fd = memfd_;
  ::munmap(begin_, static_cast<std::size_t>(end_ - begin_));
  memfd_ = -1;
  storage_ = Storage::window;
  end_ = cur_ = begin_ = nullptr;
  // F_SEAL_WRITE fails (EBUSY) while the kernel still holds an extra
  // reference to a page, as it briefly may to pages just faulted in on
  // another CPU. We hold no mapping any more, so sealing future writes is
  // as good: nobody can write to it from now on.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
  }
  return fd;
}

void OutputBuffer::grow(std::size_t extra) {
  const std::size_t needed = size() + extra;
  const std::size_t capacity = static_cast<std::size_t>(end_ - begin_);
  if (needed <= spill_limit_ && storage_ != Storage::memfd) {
    move_to(Storage::heap, grown(capacity, needed));
  } else {
    move_to(Storage::memfd, grown_memfd(storage_ == Storage::memfd ? capacity : 0, needed));
  }
}

void OutputBuffer::move_to(Storage storage, std::size_t capacity) {
  const std::size_t used = size();
  char* fresh = nullptr;
  if (storage == Storage::heap) {
    fresh = static_cast<char*>(storage_ == Storage::heap ? std::realloc(begin_, capacity) : std::malloc(capacity));
    if (fresh == nullptr) throw std::bad_alloc();
    if (storage_ == Storage::window && used != 0) std::memcpy(fresh, begin_, used);
    if (storage_ == Storage::heap) begin_ = nullptr;  // realloc took it
  } else if (storage_ == Storage::memfd) {
    // Grow in place: the kernel moves pages, not bytes.
    if (::ftruncate(memfd_, static_cast<off_t>(capacity)) != 0) throw std::bad_alloc();
    const auto old_capacity = static_cast<std::size_t>(end_ - begin_);
    void* p = ::mremap(begin_, old_capacity, capacity, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    begin_ = static_cast<char*>(p);
    populate(begin_ + old_capacity, capacity - old_capacity);
    cur_ = begin_ + used;
    end_ = begin_ + capacity;
    return;
  } else {
    const int fd = ::memfd_create("procpool-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
      if (fd >= 0) ::close(fd);
      throw SerializationError("procpool: cannot create a memfd for a large payload: " + std::to_string(errno));
    }
    void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw std::bad_alloc();
    }
    fresh = static_cast<char*>(p);
    populate(fresh, capacity);
    if (used != 0) std::memcpy(fresh, begin_, used);
    if (storage_ == Storage::heap) std::free(begin_);
    memfd_ = fd;
  }
  begin_ = fresh;
  cur_ = fresh + used;
  end_ = fresh + capacity;
  storage_ = storage;
}

void InputBuffer::underflow(std::size_t wanted) const {
  throw SerializationError("procpool: truncated payload: " + std::to_string(wanted) + " bytes wanted, " +
                           std::to_string(remaining()) + " left");
}

}  // namespace procpool::detail
