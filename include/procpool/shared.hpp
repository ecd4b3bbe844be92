/// \file
/// procpool::Shared: an immutable value stored once in shared memory, passed
/// to tasks by handle (made by TaskPool::share()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>

#include <cereal/types/string.hpp>

#include "procpool/detail/shared_block.hpp"
#include "procpool/detail/wire_archive.hpp"
#include "procpool/errors.hpp"

namespace procpool {

class TaskPool;

/// An immutable value, serialized once into shared memory by
/// TaskPool::share(). A task argument of this type costs a fixed-size
/// handle, whatever the value's size; in the task, get() (or `*s`, `s->`)
/// gives the value, decoded at most once per worker process while any copy
/// of the handle lives in the parent (a replacement worker decodes it again):
///
/// \code
/// double score(procpool::Shared<std::vector<double>> table, int i) { return (*table)[i] * 2; }
/// ...
/// auto table = pool.share(std::vector<double>(10'000'000, 1.0));
/// auto r = pool.apply_async(score, table, 7);
/// \endcode
///
/// Copies are cheap (a shared_ptr) and share the value; the memory is freed
/// once the last handle in the parent and the last task carrying one are
/// gone. Copying, destroying and get() are thread-safe. On a
/// procpool::mpi::Pool the value's bytes go once to each rank that runs a
/// task carrying the handle (ahead of that task), are decoded there at most
/// once, and are dropped there once the parent's last handle and task are gone.
template <class T>
class Shared {
 public:
  using element_type = T;  ///< The type of the value

  /// An empty handle, whose get() throws ValueError. What a task argument
  /// is built as before its handle is read. Never blocks or throws.
  Shared() noexcept = default;

  /// The value. In the parent it is decoded on the first call (by any
  /// copy), in a worker when the task's arguments are read; later calls
  /// return the same object, which lives as long as the handle. Blocks only
  /// for that first decoding. Throws ValueError on an empty handle,
  /// SerializationError if the value cannot be decoded. Thread-safe.
  const T& get() const {
    if (!block_) throw ValueError("procpool::Shared::get: the handle is empty");
    return *static_cast<const T*>(block_->value(typeid(T), [&] { return decode(*block_); }));
  }
  /// get(): the value. Blocks and throws as get(). Thread-safe.
  const T& operator*() const { return get(); }
  /// &get(): the value's members. Blocks and throws as get(). Thread-safe.
  const T* operator->() const { return &get(); }

  /// Writes the handle (an id), and attaches the value's memory to the task
  /// being encoded. Called by cereal. Throws SerializationError outside a
  /// pool's task.
  template <class Archive>
  void save(Archive& archive) const {
    detail::attach_shared_block(block_, detail::SharedBlock::Kind::value, "Shared");
    archive(block_ ? block_->id() : std::uint64_t{0});
  }

  /// Reads a handle in a worker and decodes the value, unless this worker
  /// already has. Called by cereal. Throws SerializationError if the id is
  /// unknown or names something else than a T.
  template <class Archive>
  void load(Archive& archive) {
    std::uint64_t id = 0;
    archive(id);
    if (id == 0) {
      block_.reset();
      return;
    }
    auto block = detail::find_shared_block(id);
    if (block->kind() != detail::SharedBlock::Kind::value) {
      throw SerializationError("procpool: a Shared handle names shared data that is not a value");
    }
    block->value(typeid(T), [&] { return decode(*block); });
    block_ = std::move(block);
  }

 private:
  friend class TaskPool;

  explicit Shared(std::shared_ptr<detail::SharedBlock> block) noexcept : block_(std::move(block)) {}

  // The value's type goes first: a handle forged to name another type's value fails to decode.
  static std::shared_ptr<detail::SharedBlock> encode(const T& value) {
    return detail::SharedBlock::create_value([&](detail::OutputBuffer& out) {
      detail::WireOutputArchive archive(out);
      archive(std::string(typeid(T).name()), value);
    });
  }

  static std::shared_ptr<const void> decode(const detail::SharedBlock& block) {
    detail::InputBuffer in(block.data(), block.size());
    detail::WireInputArchive archive(in);
    std::string type;
    archive(type);
    if (type != typeid(T).name()) throw SerializationError("procpool: a Shared handle names a value of another type");
    auto value = std::make_shared<T>();
    archive(*value);
    return value;
  }

  std::shared_ptr<detail::SharedBlock> block_;
};

}  // namespace procpool
