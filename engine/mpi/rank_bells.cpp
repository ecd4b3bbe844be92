#include "engine/mpi/rank_bells.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>

#include "engine/sys/constants.hpp"

namespace procpool::mpi::detail {

namespace {

using procpool::detail::cache_line;
using procpool::detail::Doorbell;

// What rank 0 tells the others: where its memfd is, and what it holds first.
struct BellsAt {
  std::int32_t pid = 0;
  std::int32_t fd = -1;  // -1: rank 0 has no bells
  std::uint64_t cookie = 0;
};

// The cookie in the first cache line, then one Box per rank.
constexpr std::size_t bells_offset = cache_line;
static_assert(sizeof(Doorbell) == cache_line);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace

RankBells::~RankBells() {
  opened();
  if (boxes_ != nullptr) ::munmap(reinterpret_cast<char*>(boxes_) - bells_offset, bytes_);
}

void RankBells::open(MPI_Comm comm, int rank, int ranks) noexcept {
  bytes_ = bells_offset + static_cast<std::size_t>(ranks) * sizeof(Box);
  BellsAt at;
  char* base = nullptr;
  if (rank == 0) {
    at.pid = static_cast<std::int32_t>(::getpid());
    fd_ = ::memfd_create("procpool-mpi-bells", MFD_CLOEXEC);
    void* p = MAP_FAILED;
    if (fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(bytes_)) == 0 &&
        ::getrandom(&at.cookie, sizeof at.cookie, 0) == static_cast<ssize_t>(sizeof at.cookie)) {
      p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    }
    at.cookie |= 1;  // never 0, which any zero-filled file would match
    if (p != MAP_FAILED) {
      base = static_cast<char*>(p);
      std::memcpy(base, &at.cookie, sizeof at.cookie);
      at.fd = fd_;
    } else {
      opened();
    }
  }
  if (MPI_Bcast(&at, sizeof at, MPI_BYTE, 0, comm) != MPI_SUCCESS) at.fd = -1;
  if (rank != 0 && at.fd >= 0) {
    // Only on rank 0's host, in its pid namespace, is this its memfd: the cookie says so.
    const std::string path = "/proc/" + std::to_string(at.pid) + "/fd/" + std::to_string(at.fd);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st {};
      void* p = MAP_FAILED;
      if (::fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) == bytes_) {
        p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      }
      ::close(fd);
      if (p != MAP_FAILED) {
        base = static_cast<char*>(p);
        std::uint64_t cookie = 0;
        std::memcpy(&cookie, base, sizeof cookie);
        if (cookie != at.cookie) {
          ::munmap(p, bytes_);
          base = nullptr;
        }
      }
    }
  }
  // The memfd is zero-filled: every Box starts at its initial state.
  if (base != nullptr) boxes_ = std::launder(reinterpret_cast<Box*>(base + bells_offset));
}

void RankBells::opened() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace procpool::mpi::detail
