// Byte buffers that cereal archives write into and read from.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace procpool::detail {

// Where an OutputBuffer's bytes go past its spill limit: storage another
// process can be given (a sealed memfd; or a block of a pool's payload arena). The
// codec only asks it for room; the engine implements it and hands it over.
class SpillStore {
 public:
  struct Region {
    char* data;
    std::size_t capacity;
  };

  virtual ~SpillStore() = default;

  // A writable region of at least `needed` bytes. If the store holds one
  // already, its first `used` bytes are kept (grown in place or moved);
  // otherwise the new region's bytes are unspecified and the caller fills it.
  // Throws std::bad_alloc or SerializationError; the old region stays valid then.
  virtual Region grow(std::size_t used, std::size_t needed) = 0;
  // Frees the region, if any. The buffer that wrote into it has let go.
  virtual void discard() noexcept = 0;
};

// Where serialized bytes go. It starts on a caller-given window (a slot in a
// shared-memory ring, so small payloads are written in place) and, when that
// is too small, moves to the heap and then, past `spill_limit`, to its spill
// store if it has one. No size limit short of memory.
class OutputBuffer {
 public:
  enum class Storage { window, heap, spilled };

  // `spill` (not owned, may be null: the heap takes everything) must outlive this buffer.
  explicit OutputBuffer(SpillStore* spill = nullptr) noexcept : spill_(spill) {}
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;
  ~OutputBuffer();

  // Starts over on [window, window + capacity); capacity may be 0.
  void reset(char* window, std::size_t capacity, std::size_t spill_limit) noexcept;

  void write(const void* bytes, std::size_t n) {
    if (n > static_cast<std::size_t>(end_ - cur_)) grow(n);
    std::memcpy(cur_, bytes, n);
    cur_ += n;
  }
  // Drops everything written after the first `n` bytes.
  void truncate(std::size_t n) noexcept { cur_ = begin_ + n; }

  std::size_t size() const noexcept { return static_cast<std::size_t>(cur_ - begin_); }
  const char* data() const noexcept { return begin_; }
  Storage storage() const noexcept { return storage_; }
  // When storage() == spilled: lets go of the bytes without discarding them,
  // so the store's owner can take them (read size() first); the buffer is
  // left empty. Does nothing otherwise.
  void release_spill() noexcept;

 private:
  void grow(std::size_t extra);
  void move_to_heap(std::size_t capacity);
  void move_to_spill(std::size_t needed);
  void free_storage() noexcept;

  char* begin_ = nullptr;
  char* cur_ = nullptr;
  char* end_ = nullptr;
  Storage storage_ = Storage::window;
  std::size_t spill_limit_ = 0;
  SpillStore* spill_ = nullptr;
};

// Bounds-checked reads over bytes that may be garbage: reading past the end
// throws SerializationError instead of touching memory it does not own.
class InputBuffer {
 public:
  InputBuffer(const char* data, std::size_t size) noexcept : cur_(data), end_(data + size) {}

  void read(void* bytes, std::size_t n) {
    if (n > remaining()) underflow(n);
    std::memcpy(bytes, cur_, n);
    cur_ += n;
  }
  // The next `n` bytes where they are, skipped over: a reader copies them once, itself.
  const char* skip(std::size_t n) {
    if (n > remaining()) underflow(n);
    const char* at = cur_;
    cur_ += n;
    return at;
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - cur_); }
  [[noreturn]] void underflow(std::size_t wanted) const;

 private:
  const char* cur_;
  const char* end_;
};

}  // namespace procpool::detail
