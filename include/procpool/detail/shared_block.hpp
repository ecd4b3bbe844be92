// The memory behind Shared<T> and SharedArray<T>: one memfd, mapped once per
// process, named on the wire by an id. A task that carries a handle is
// encoded with the block attached, so the pool can send the memfd (or, to an
// MPI rank, a value's bytes) to the worker ahead of the task and keep it
// alive until the task has finished.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <typeinfo>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/function_ref.hpp"

namespace procpool::detail {

class SharedBlock {
 public:
  enum class Kind : std::uint8_t { value = 1, array = 2 };

  // A new block of `bytes` zero bytes, mapped read-write, its size sealed.
  static std::shared_ptr<SharedBlock> create_array(std::size_t bytes);
  // A new block holding what `encode` writes, sealed against any change and
  // mapped read-only. Throws what `encode` throws, or Error.
  static std::shared_ptr<SharedBlock> create_value(FunctionRef<void(OutputBuffer&)> encode);
  // A block another process sent: takes `fd`, checks that it holds `size`
  // bytes (and is sealed, for a value), and maps it. Throws SerializationError.
  static std::shared_ptr<SharedBlock> adopt(std::uint64_t id, Kind kind, int fd, std::size_t size);
  // A copy of value block `id`, whose `size` bytes `fill` writes (an MPI rank
  // receives them there); then mapped read-only. Throws what `fill` throws,
  // Error or std::bad_alloc if the memory cannot be made.
  static std::shared_ptr<SharedBlock> fill_value(std::uint64_t id, std::size_t size, FunctionRef<void(char*)> fill);

  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  // Unmaps and closes; in the process that made it, tells the pools it was
  // sent through that their workers may drop it.
  ~SharedBlock();

  std::uint64_t id() const noexcept { return id_; }
  Kind kind() const noexcept { return kind_; }
  char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }
  // A pool sent it to a worker: its release must then be announced.
  void mark_sent() noexcept { sent_.store(true, std::memory_order_relaxed); }

  // The value a value block holds, decoded by `decode` on the first call in
  // this process and kept as long as the block. Throws SerializationError if
  // an earlier call decoded it as another type. Thread-safe.
  const void* value(const std::type_info& type, FunctionRef<std::shared_ptr<const void>()> decode);

 private:
  SharedBlock(std::uint64_t id, Kind kind, int fd, char* data, std::size_t size, pid_t maker);

  std::uint64_t id_;
  Kind kind_;
  int fd_;
  char* data_;
  std::size_t size_;
  pid_t maker_;  // the process that created it; 0 if received
  std::atomic<bool> sent_{false};
  std::mutex value_mutex_;
  std::atomic<const void*> value_ptr_{nullptr};
  const std::type_info* value_type_ = nullptr;
  std::shared_ptr<const void> value_;
};

// Called by a handle's save(): the task being encoded on this thread carries
// `block`, of `kind` (sent ahead of it, kept alive until it has finished); a
// null block is only checked. Throws SerializationError, naming `handle`,
// unless a pool is encoding a task, or if it is an array and that pool's
// workers cannot map it (procpool::mpi::Pool).
void attach_shared_block(const std::shared_ptr<SharedBlock>& block, SharedBlock::Kind kind, const char* handle);

// Called by a handle's load() in a worker: the block named `id`, received
// from the parent. Throws SerializationError if this process has none.
std::shared_ptr<SharedBlock> find_shared_block(std::uint64_t id);

}  // namespace procpool::detail
