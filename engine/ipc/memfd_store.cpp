#include "engine/ipc/memfd_store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <string>
#include <sys/mman.h>

#include "engine/sys/constants.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {


// What is needed, or double, whichever is more: one large write (a big
// vector) then fills it exactly instead of leaving half of it allocated.
std::size_t grown(std::size_t current, std::size_t needed) {
  const std::size_t capacity = std::max({needed, 2 * current, smallest_spill});
  return (capacity + page_size - 1) / page_size * page_size;
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

SpillStore::Region MemfdStore::grow(std::size_t used, std::size_t needed) {
  (void)used;  // mremap keeps every byte, used or not
  const std::size_t capacity = grown(capacity_, needed);
  if (!fd_) {
    UniqueFd fd(::memfd_create("procpool-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(capacity)) != 0) {
      throw SerializationError(std::string("procpool: cannot create a memfd for a large payload: ") +
                               std::strerror(errno));
    }
    void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    fd_ = std::move(fd);
    data_ = static_cast<char*>(p);
    populate(data_, capacity);
  } else {
    if (::ftruncate(fd_.get(), static_cast<off_t>(capacity)) != 0) throw std::bad_alloc();
    void* p = ::mremap(data_, capacity_, capacity, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
    populate(data_ + capacity_, capacity - capacity_);
  }
  capacity_ = capacity;
  return {data_, capacity_};
}

void MemfdStore::discard() noexcept {
  if (data_ != nullptr) ::munmap(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
  fd_.reset();
}

UniqueFd MemfdStore::release(OutputBuffer& out) noexcept {
  if (out.storage() != OutputBuffer::Storage::spilled || !fd_) return UniqueFd();
  out.release_spill();
  // Unmapped and sealed before it leaves: the receiver can then trust its
  // size and content (a peer that could shrink it could make our reads fault).
  ::munmap(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
  UniqueFd fd = std::move(fd_);
  // F_SEAL_WRITE fails (EBUSY) while the kernel still holds an extra
  // reference to a page, as it briefly may to pages just faulted in on
  // another CPU. We hold no mapping any more, so sealing future writes is
  // as good: nobody can write to it from now on.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
  }
  return fd;
}

}  // namespace procpool::detail
