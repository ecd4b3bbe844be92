// Byte buffers that cereal archives write into and read from.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace procpool::detail {

// Where serialized bytes go. It starts on a caller-given window (a slot in a
// shared-memory ring, so small payloads are written in place) and, when that
// is too small, moves to the heap and then, past `spill_limit`, to a memfd
// that can be handed to another process. No size limit short of memory.
class OutputBuffer {
 public:
  enum class Storage { window, heap, memfd };

  OutputBuffer() = default;
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
  // The memfd holding the bytes when storage() == memfd, sealed against any
  // change; ownership passes to the caller, and this buffer is left empty
  // (read size() first). -1 if the bytes are not in a memfd.
  int release_memfd() noexcept;

 private:
  void grow(std::size_t extra);
  void move_to(Storage storage, std::size_t capacity);
  void free_storage() noexcept;

  char* begin_ = nullptr;
  char* cur_ = nullptr;
  char* end_ = nullptr;
  Storage storage_ = Storage::window;
  std::size_t spill_limit_ = 0;
  int memfd_ = -1;
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
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - cur_); }
  [[noreturn]] void underflow(std::size_t wanted) const;

 private:
  const char* cur_;
  const char* end_;
};

}  // namespace procpool::detail
