#include "procpool/detail/shared_block.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "engine/executor/attachments.hpp"
#include "engine/sys/zygote_exclusions.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// Ids are never reused, even across processes: the maker's pid, then a count.
std::uint64_t next_block_id() {
  static std::atomic<std::uint64_t> count{0};
  constexpr int count_bits = 40;
  const std::uint64_t n = count.fetch_add(1, std::memory_order_relaxed) + 1;
  return (static_cast<std::uint64_t>(::getpid()) << count_bits) | (n & ((std::uint64_t{1} << count_bits) - 1));
}

int new_memfd(std::size_t bytes) {
  const int fd = ::memfd_create("procpool-shared", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw Error(std::string("procpool: cannot create a memfd for shared data: ") + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int error = errno;
    ::close(fd);
    throw Error(std::string("procpool: cannot size shared memory: ") + std::strerror(error));
  }
  return fd;
}

char* map_block(int fd, std::size_t bytes, int protection) {
  if (bytes == 0) return nullptr;
  void* p = ::mmap(nullptr, bytes, protection, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

// The pools watching releases, per process: a fork starts a list of its own
// (the inherited one names its parent's pools, and its lock may be held).
struct Watchers {
  pid_t owner;
  std::mutex mutex;
  std::vector<std::weak_ptr<ReleasedBlocks>> inboxes;
};

Watchers& watchers() {
  static std::atomic<Watchers*> current{nullptr};
  const pid_t self = ::getpid();
  Watchers* w = current.load(std::memory_order_acquire);
  while (w == nullptr || w->owner != self) {
    // Never freed: blocks may be released during static destruction.
    auto* fresh = new Watchers{self, {}, {}};
    if (current.compare_exchange_strong(w, fresh, std::memory_order_acq_rel)) return *fresh;
    delete fresh;
  }
  return *w;
}

void announce_release(std::uint64_t id) noexcept {
  std::vector<std::shared_ptr<ReleasedBlocks>> live;
  try {
    Watchers& w = watchers();
    std::lock_guard lock(w.mutex);
    for (auto& inbox : w.inboxes) {
      if (auto p = inbox.lock()) live.push_back(std::move(p));
    }
  } catch (...) {
    // Out of memory: the workers that have the block keep it until they exit.
  }
  for (auto& inbox : live) inbox->released(id);
}

thread_local AttachmentScope* current_scope = nullptr;
SharedBlockLookup block_lookup = nullptr;

}  // namespace

SharedBlock::SharedBlock(std::uint64_t id, Kind kind, int fd, char* data, std::size_t size, pid_t maker)
    : id_(id), kind_(kind), fd_(fd), data_(data), size_(size), maker_(maker) {
  try {
    add_zygote_exclusion(data_, size_, fd_);
  } catch (...) {
    if (data_ != nullptr) ::munmap(data_, size_);
    ::close(fd_);
    throw;
  }
}

std::shared_ptr<SharedBlock> SharedBlock::create_array(std::size_t bytes) {
  const int fd = new_memfd(bytes);
  // Its size is fixed: a worker mapping it can never fault past a shrunk end.
  ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
  char* data = map_block(fd, bytes, PROT_READ | PROT_WRITE);
  if (bytes != 0 && data == nullptr) {
    ::close(fd);
    throw std::bad_alloc();
  }
  return std::shared_ptr<SharedBlock>(new SharedBlock(next_block_id(), Kind::array, fd, data, bytes, ::getpid()));
}

std::shared_ptr<SharedBlock> SharedBlock::create_value(FunctionRef<void(OutputBuffer&)> encode) {
  // Small values are copied once into a memfd of their size; large ones are written into one.
  MemfdStore spill;
  OutputBuffer encoded(&spill);
  encoded.reset(nullptr, 0, std::size_t{1} << 20);
  encode(encoded);
  const std::size_t bytes = encoded.size();
  int fd = -1;
  if (encoded.storage() == OutputBuffer::Storage::spilled) {
    fd = spill.release(encoded).release();  // sealed by the store
  } else {
    fd = new_memfd(bytes);
    std::size_t done = 0;
    while (done < bytes) {
      const ssize_t n = ::pwrite(fd, encoded.data() + done, bytes - done, static_cast<off_t>(done));
      if (n <= 0 && errno != EINTR) {
        ::close(fd);
        throw Error(std::string("procpool: cannot write shared data: ") + std::strerror(errno));
      }
      if (n > 0) done += static_cast<std::size_t>(n);
    }
    ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  }
  char* data = map_block(fd, bytes, PROT_READ);
  if (bytes != 0 && data == nullptr) {
    ::close(fd);
    throw std::bad_alloc();
  }
  return std::shared_ptr<SharedBlock>(new SharedBlock(next_block_id(), Kind::value, fd, data, bytes, ::getpid()));
}

std::shared_ptr<SharedBlock> SharedBlock::adopt(std::uint64_t id, Kind kind, int fd, std::size_t size) {
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  if (kind != Kind::value && kind != Kind::array) throw SerializationError("procpool: shared data of an unknown kind");
  // Both kinds are sealed against shrinking, so a mapping can never fault;
  // a value is also sealed against writes.
  const int seals = ::fcntl(fd, F_GET_SEALS);
  const bool sealed = seals >= 0 && (seals & F_SEAL_SHRINK) != 0 &&
                      (kind == Kind::array || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0);
  struct stat st {};
  if (!sealed || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) < size) {
    throw SerializationError("procpool: shared data arrived in a memfd that is not sealed or too small");
  }
  char* data = map_block(fd, size, kind == Kind::array ? PROT_READ | PROT_WRITE : PROT_READ);
  if (size != 0 && data == nullptr) {
    throw SerializationError(std::string("procpool: cannot map shared data: ") + std::strerror(errno));
  }
  closer.fd = -1;
  return std::shared_ptr<SharedBlock>(new SharedBlock(id, kind, fd, data, size, 0));
}

std::shared_ptr<SharedBlock> SharedBlock::fill_value(std::uint64_t id, std::size_t size,
                                                     FunctionRef<void(char*)> fill) {
  // Never sent on by this process: it need not be sealed, only read-only once filled.
  const int fd = new_memfd(size);
  char* data = map_block(fd, size, PROT_READ | PROT_WRITE);
  if (size != 0 && data == nullptr) {
    ::close(fd);
    throw std::bad_alloc();
  }
  try {
    fill(data);
    if (size != 0 && ::mprotect(data, size, PROT_READ) != 0) {
      throw Error(std::string("procpool: cannot protect shared data: ") + std::strerror(errno));
    }
  } catch (...) {
    if (data != nullptr) ::munmap(data, size);
    ::close(fd);
    throw;
  }
  return std::shared_ptr<SharedBlock>(new SharedBlock(id, Kind::value, fd, data, size, 0));
}

SharedBlock::~SharedBlock() {
  remove_zygote_exclusion(data_, fd_);
  if (data_ != nullptr) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  if (sent_.load(std::memory_order_relaxed) && maker_ == ::getpid()) announce_release(id_);
}

const void* SharedBlock::value(const std::type_info& type, FunctionRef<std::shared_ptr<const void>()> decode) {
  if (const void* ready = value_ptr_.load(std::memory_order_acquire); ready != nullptr && *value_type_ == type) {
    return ready;
  }
  std::lock_guard lock(value_mutex_);
  if (value_ == nullptr) {
    value_ = decode();
    value_type_ = &type;
    value_ptr_.store(value_.get(), std::memory_order_release);
  } else if (*value_type_ != type) {
    throw SerializationError("procpool: a Shared handle names a value of another type");
  }
  return value_.get();
}

void attach_shared_block(const std::shared_ptr<SharedBlock>& block, SharedBlock::Kind kind, const char* handle) {
  if (current_scope == nullptr) {
    throw SerializationError(std::string("procpool: a ") + handle + " can only be passed as a task argument");
  }
  if (kind == SharedBlock::Kind::array && !current_scope->arrays_allowed()) {
    throw SerializationError(std::string("procpool: a ") + handle +
                             " cannot be passed to a procpool::mpi::Pool task (SharedArray works only with "
                             "local pools: its memory is not copied)");
  }
  if (block) current_scope->add(block);
}

std::shared_ptr<SharedBlock> find_shared_block(std::uint64_t id) {
  std::shared_ptr<SharedBlock> block = block_lookup != nullptr ? block_lookup(id) : nullptr;
  if (!block) {
    throw SerializationError("procpool: a task names shared data " + std::to_string(id) +
                             " that this process does not have");
  }
  return block;
}

void set_shared_block_lookup(SharedBlockLookup lookup) noexcept { block_lookup = lookup; }

AttachmentScope::AttachmentScope(bool arrays_allowed) noexcept
    : outer_(current_scope), arrays_allowed_(arrays_allowed) {
  current_scope = this;
}

AttachmentScope::~AttachmentScope() { current_scope = outer_; }

void AttachmentScope::add(const std::shared_ptr<SharedBlock>& block) {
  // A map over subspans names one block many times: keep it once.
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
    if (*it == block) return;
  }
  blocks_.push_back(block);
}

void ReleasedBlocks::released(std::uint64_t id) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!open_) return;
    try {
      ids_.push_back(id);
    } catch (...) {
      return;  // out of memory: the workers keep the block until they exit
    }
    ++waking_;
  }
  wake_();
  std::lock_guard lock(mutex_);
  if (--waking_ == 0) woken_.notify_all();
}

std::vector<std::uint64_t> ReleasedBlocks::take() {
  std::lock_guard lock(mutex_);
  return std::exchange(ids_, {});
}

void ReleasedBlocks::close() noexcept {
  std::unique_lock lock(mutex_);
  open_ = false;
  woken_.wait(lock, [&] { return waking_ == 0; });
}

void watch_released_blocks(const std::weak_ptr<ReleasedBlocks>& inbox) {
  Watchers& w = watchers();
  std::lock_guard lock(w.mutex);
  std::erase_if(w.inboxes, [](const auto& p) { return p.expired(); });
  w.inboxes.push_back(inbox);
}

}  // namespace procpool::detail
