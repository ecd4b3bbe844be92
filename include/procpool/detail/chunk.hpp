// Chunks: one task that applies a callable to many items (the map family).
//
// A chunk payload is: invoker CodeRef, callable, item count, items. Its
// result is: item count, then per item a ResultStatus and the value or the
// error, so one item that throws does not stop the others.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "procpool/detail/error_codec.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/detail/task_codec.hpp"

namespace procpool::detail {

// f(item), or std::apply(f, item) for starmap.
template <class F, bool Star, class Item>
decltype(auto) call_item(F& fn, Item&& item) {
  if constexpr (Star) {
    return std::apply(fn, std::forward<Item>(item));
  } else {
    return fn(std::forward<Item>(item));
  }
}

template <class F, bool Star, class Item>
using item_result_t = std::decay_t<decltype(call_item<F, Star, Item>(std::declval<F&>(), std::declval<Item>()))>;

template <class F, bool Star, class Item>
constexpr void check_chunk() {
  static_assert(Sendable<F>,
                "procpool: a task callable must be a free function, a captureless lambda, or a function object "
                "serializable with cereal; a capturing lambda cannot be sent to another process (pass what it "
                "captures as arguments instead)");
  static_assert(Serializable<Item>,
                "procpool: the items of map/imap/starmap must be serializable with cereal (a cereal/types header "
                "for std types, or a serialize/save/load function for your own)");
  using R = item_result_t<F, Star, Item>;
  static_assert(std::is_void_v<R> || (Serializable<R> && std::is_default_constructible_v<R>),
                "procpool: a task's result type must be default-constructible and serializable with cereal");
}

// The worker side: run every item, recording each one's value or error.
template <class F, bool Star, class Item>
void invoke_chunk(InputBuffer& in, OutputBuffer& out) {
  using R = item_result_t<F, Star, Item>;
  WireInputArchive input(in);
  F fn = load_callable<F>(input);
  std::uint64_t count = 0;
  as_serialization_stage("deserialize a chunk's item count", [&] { input(count); });
  // Items of empty types take no bytes; any other needs at least one.
  if (!std::is_empty_v<Item> && count > in.remaining()) in.underflow(count);
  WireOutputArchive output(out);
  output(count);
  std::exception_ptr broken;  // once an item fails to load, the ones after it cannot be found
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::size_t mark = out.size();
    try {
      if (broken) std::rethrow_exception(broken);
      Item item{};
      try {
        as_serialization_stage("deserialize a map item", [&] { input(item); });
      } catch (...) {
        broken = std::current_exception();
        throw;
      }
      if constexpr (std::is_void_v<R>) {
        call_item<F, Star>(fn, std::move(item));
        output(static_cast<std::uint8_t>(ResultStatus::value));
      } else {
        R result = call_item<F, Star>(fn, std::move(item));
        output(static_cast<std::uint8_t>(ResultStatus::value));
        as_serialization_stage("serialize the task result", [&] { output(result); });
      }
    } catch (...) {
      out.truncate(mark);
      output(static_cast<std::uint8_t>(ResultStatus::error));
      encode_current_exception(out);
    }
  }
}

// The parent side: the payload of a chunk of `count` items from `first`.
template <class F, bool Star, class Item, class Iterator>
void encode_chunk(OutputBuffer& out, const F& fn, Iterator first, std::size_t count) {
  static const CodeRef invoker = code_ref_of_function(&invoke_chunk<F, Star, Item>);
  WireOutputArchive output(out);
  output(invoker.module, invoker.offset);
  save_callable(output, fn);
  output(static_cast<std::uint64_t>(count));
  for (std::size_t i = 0; i < count; ++i, ++first) {
    if constexpr (std::is_same_v<std::decay_t<decltype(*first)>, Item>) {
      output(*first);
    } else {
      output(static_cast<Item>(*first));
    }
  }
}

// One item's outcome: a value, or the error it ended with.
template <class R>
struct ItemOutcome {
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  Value value{};
  std::exception_ptr error;
};

template <class R>
class ChunkState;

// Told when a chunk has finished, on whichever thread finished it.
template <class R>
class ChunkSink {
 public:
  virtual void chunk_done(std::size_t index, ChunkState<R>& chunk) noexcept = 0;

 protected:
  ~ChunkSink() = default;
};

template <class R>
class ChunkState final : public ResultStateBase {
 public:
  ChunkState(std::shared_ptr<ChunkSink<R>> sink, std::size_t index, std::size_t count)
      : sink_(std::move(sink)), index_(index), count_(count) {}

  void deliver(InputBuffer& in, pid_t worker_pid) override {
    std::vector<ItemOutcome<R>> outcomes(count_);
    {
      WireInputArchive input(in);
      std::uint64_t count = 0;
      input(count);
      if (count != count_) {
        throw SerializationError("procpool: a chunk result holds " + std::to_string(count) + " items, not " +
                                 std::to_string(count_));
      }
      for (auto& outcome : outcomes) {
        std::uint8_t status = 0;
        input(status);
        if (status == static_cast<std::uint8_t>(ResultStatus::error)) {
          // Strict: after an item that does not decode, the next ones cannot be found.
          outcome.error = decode_exception(in, worker_pid, true);
        } else if (status != static_cast<std::uint8_t>(ResultStatus::value)) {
          throw SerializationError("procpool: a chunk item has an unknown status " + std::to_string(status));
        } else if constexpr (!std::is_void_v<R>) {
          input(outcome.value);
        }
      }
    }
    if (!claim()) return;
    outcomes_ = std::move(outcomes);
    complete();
  }

  std::size_t index() const noexcept { return index_; }
  std::size_t count() const noexcept { return count_; }
  // Valid once ready() and error() is null; the sink may move from it.
  std::vector<ItemOutcome<R>>& outcomes() noexcept { return outcomes_; }

 private:
  void completed() noexcept override {
    if (sink_) sink_->chunk_done(index_, *this);
  }

  std::shared_ptr<ChunkSink<R>> sink_;
  std::size_t index_;
  std::size_t count_;
  std::vector<ItemOutcome<R>> outcomes_;
};

// At most this many items per automatic chunk: a chunk of small items (4096
// ints are about 20 KiB) then travels through the shared-memory rings, whose
// pages stay warm, instead of a fresh memfd per chunk.
inline constexpr std::size_t max_auto_chunksize = 4096;

// Python's automatic chunk size, about four chunks per worker, capped.
inline std::size_t auto_chunksize(std::size_t items, int workers) {
  if (items == 0) return 1;
  const std::size_t per = static_cast<std::size_t>(workers) * 4;
  const std::size_t python = items / per + (items % per != 0 ? 1 : 0);
  return python < max_auto_chunksize ? python : max_auto_chunksize;
}

}  // namespace procpool::detail
