/// \file
/// procpool::SharedArray: an array in shared memory that the parent, every
/// worker of a local Pool and Process children read and write in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "procpool/detail/shared_block.hpp"
#include "procpool/errors.hpp"

namespace procpool {

/// `n` elements of a trivially copyable T in unnamed shared memory (a memfd),
/// as Python's multiprocessing.Array(lock=False): the parent, the workers of
/// every local Pool (pools built before the array too) and Process children
/// all see the same memory, never a copy. A task argument carries only a
/// fixed-size handle, so a map can hand each task a subspan() to fill in place:
///
/// \code
/// void square_all(procpool::SharedArray<double> slice) {
///   for (double& x : slice) x *= x;
/// }
/// ...
/// procpool::SharedArray<double> a(1 << 20);
/// std::vector<procpool::SharedArray<double>> slices;
/// for (std::size_t i = 0; i < a.size(); i += 1 << 16) slices.push_back(a.subspan(i, 1 << 16));
/// pool.map(square_all, slices);  // the parent now sees every slice squared
/// \endcode
///
/// A SharedArray is a handle: copies share the memory, which lives while any
/// handle to it lives in the parent or in a running task, and leaves nothing
/// behind (no file, fd or mapping) once the last one is gone. Constness is
/// shallow, as std::span's. Concurrent writes to the same element are the
/// caller's to avoid. A handle may be used from several threads at once
/// (copying and destroying handles is thread-safe, as with std::shared_ptr);
/// the elements themselves are plain memory. It is local-only: the ranks of
/// a procpool::mpi::Pool cannot map it (they may be on other hosts), so in
/// such a task it fails that task with SerializationError; send a Shared<T>
/// there, or the data itself.
template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "procpool: SharedArray<T> needs a trivially copyable T (its bytes are shared as they are)");

 public:
  using value_type = T;        ///< The element type
  using size_type = std::size_t;  ///< The type of sizes and indices
  using iterator = T*;         ///< A contiguous iterator over the elements

  /// An empty array: size() is 0 and data() null. What a task argument is
  /// built as before its handle is read. Never blocks or throws.
  SharedArray() noexcept = default;

  /// `n` zero-initialized elements in new shared memory, mapped into this
  /// process. Blocks only while the memory is created. Throws
  /// std::length_error if n elements do not fit in memory's address range,
  /// Error if the memory cannot be created, std::bad_alloc if it cannot be
  /// mapped. Thread-safe.
  explicit SharedArray(std::size_t n) : size_(n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw std::length_error("procpool::SharedArray: too many elements");
    }
    if (n != 0) block_ = detail::SharedBlock::create_array(n * sizeof(T));
  }

  /// The number of elements. Never blocks or throws.
  std::size_t size() const noexcept { return size_; }
  /// Whether size() is 0. Never blocks or throws.
  bool empty() const noexcept { return size_ == 0; }
  /// The first element (null if empty), in this process's mapping. Never
  /// blocks or throws.
  T* data() const noexcept { return block_ ? reinterpret_cast<T*>(block_->data()) + offset_ : nullptr; }
  /// Element `i`, unchecked (as std::span). Never blocks or throws.
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  /// An iterator to the first element. Never blocks or throws.
  T* begin() const noexcept { return data(); }
  /// An iterator past the last element. Never blocks or throws.
  T* end() const noexcept { return data() + size_; }
  /// The elements as a std::span, valid while this handle lives. Never
  /// blocks or throws.
  std::span<T> span() const noexcept { return {data(), size_}; }

  /// The `count` elements from `offset` on, as a SharedArray sharing this
  /// one's memory (and keeping it alive). Never blocks. Throws
  /// std::out_of_range if they are not all within this array.
  SharedArray subspan(std::size_t offset, std::size_t count) const {
    if (offset > size_ || count > size_ - offset) {
      throw std::out_of_range("procpool::SharedArray::subspan: elements [" + std::to_string(offset) + ", " +
                              std::to_string(offset) + " + " + std::to_string(count) + ") are past its size " +
                              std::to_string(size_));
    }
    SharedArray view;
    view.block_ = block_;
    view.offset_ = offset_ + offset;
    view.size_ = count;
    return view;
  }

  /// Writes the handle (an id, offset and count), and attaches the memory to
  /// the task being encoded. Called by cereal. Throws SerializationError
  /// outside a local Pool's task (in a procpool::mpi::Pool's task too).
  template <class Archive>
  void save(Archive& archive) const {
    detail::attach_shared_block(block_, detail::SharedBlock::Kind::array, "SharedArray");
    archive(block_ ? block_->id() : std::uint64_t{0}, static_cast<std::uint64_t>(offset_),
            static_cast<std::uint64_t>(size_), static_cast<std::uint64_t>(sizeof(T)));
  }

  /// Reads a handle in a worker, checking it against the memory it names.
  /// Called by cereal. Throws SerializationError if the id is unknown, or
  /// the offset, count or element size do not fit that memory.
  template <class Archive>
  void load(Archive& archive) {
    std::uint64_t id = 0;
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
    std::uint64_t element = 0;
    archive(id, offset, count, element);
    if (element != sizeof(T)) throw SerializationError("procpool: a SharedArray handle has another element size");
    std::shared_ptr<detail::SharedBlock> block;
    std::uint64_t total = 0;
    if (id != 0) {
      block = detail::find_shared_block(id);
      if (block->kind() != detail::SharedBlock::Kind::array) {
        throw SerializationError("procpool: a SharedArray handle names shared data that is not an array");
      }
      total = block->size() / sizeof(T);
    }
    if (offset > total || count > total - offset) {
      throw SerializationError("procpool: a SharedArray handle's offset and count are past its array's end");
    }
    block_ = std::move(block);
    offset_ = static_cast<std::size_t>(offset);
    size_ = static_cast<std::size_t>(count);
  }

 private:
  std::shared_ptr<detail::SharedBlock> block_;
  std::size_t offset_ = 0;  // in elements, from the start of the block
  std::size_t size_ = 0;
};

}  // namespace procpool
