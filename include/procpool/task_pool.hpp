/// \file
/// procpool::TaskPool: the surface every pool shares (apply_async, map, imap,
/// close, join, ...), whatever runs the tasks: procpool::Pool's worker
/// processes on this machine, or procpool::mpi::Pool's ranks across hosts.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "procpool/async_result.hpp"
#include "procpool/detail/chunk.hpp"
#include "procpool/detail/dependent_task.hpp"
#include "procpool/detail/executor.hpp"
#include "procpool/detail/map_state.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/errors.hpp"
#include "procpool/imap_iterator.hpp"
#include "procpool/shared.hpp"
#include "procpool/task_options.hpp"

namespace procpool {

namespace detail {
template <class Range>
using map_item_t = wire_t<std::ranges::range_value_t<Range>>;
}  // namespace detail

/// The task surface every pool shares: apply_async, apply, the map family,
/// close, join, terminate. Code written against TaskPool& runs unchanged on
/// either pool:
///
/// \code
/// std::vector<int> squares(procpool::TaskPool& pool, const std::vector<int>& xs) {
///   return pool.map(square, xs);
/// }
/// \endcode
///
/// Tasks are free functions, captureless lambdas or cereal-serializable
/// function objects, with cereal-serializable arguments; anything else does
/// not compile, with a message that says why. Every member but the
/// destructor is thread-safe: several threads may submit tasks, wait, and
/// close the pool at once.
///
/// A pool whose workers cannot start is broken (see BrokenPool): every call
/// documented to throw ValueError after close() or terminate() (submissions,
/// share(), size()) throws BrokenPool instead, naming the cause; close()
/// does nothing, join(), terminate() and the destructor return promptly.
class TaskPool {
 public:
  /// Not copyable: a pool owns its workers.
  TaskPool(const TaskPool&) = delete;
  /// Not copyable: a pool owns its workers.
  TaskPool& operator=(const TaskPool&) = delete;
  /// If still running: close(), then join(), so nothing queued is lost. After
  /// close() or terminate(): join(). Blocks until the workers have exited.
  /// Never throws. No other call on the pool may run concurrently with it.
  virtual ~TaskPool();

  /// Queues f(args...) to run in a worker and returns its future at once.
  /// The callable and the arguments are serialized here, on the calling
  /// thread; the task then waits in the pool's queue (unbounded) until a
  /// worker is free. Does not wait for the task, except under a pool's
  /// PoolOptions::max_pending: then it blocks while that many tasks are
  /// unfinished (callbacks on the result thread never block). Throws
  /// ValueError after close() or terminate() (also when either releases it
  /// from that wait). An argument that fails to serialize at run time fails
  /// the result with SerializationError instead of throwing here.
  /// Thread-safe.
  ///
  /// An AsyncResult<T> argument where f takes a T makes a dependency: the
  /// call returns at once, the task is queued when every such argument is
  /// ready (on the thread that completes the last one, usually the pool's
  /// result thread) and receives their values; if one fails, the result
  /// fails with the same error and the task never runs. The arguments may
  /// come from any pool, then() or when_all(). A task waiting for its
  /// arguments counts as queued: close() still lets it run, join() waits
  /// for it; cancel() on its result keeps it from ever being queued.
  /// (PoolOptions::max_pending counts it from when it is queued.)
  template <class F, class... Args>
    requires(!std::is_same_v<F, TaskOptions>)
  [[nodiscard]] auto apply_async(F f, const Args&... args)
      -> AsyncResult<detail::task_result_t<F, detail::dependency_value_t<Args>...>> {
    return apply_async(TaskOptions{}, f, args...);
  }
  /// As apply_async(f, args...), under a per-task policy: a hard `timeout`
  /// (the worker is killed; TaskTimeout), a `soft_timeout` (the task is asked
  /// to stop), `retries` after WorkerLost or TaskTimeout, and a `priority`
  /// among queued tasks (see TaskOptions). Thread-safe.
  template <class F, class... Args>
  [[nodiscard]] auto apply_async(const TaskOptions& options, F f, const Args&... args)
      -> AsyncResult<detail::task_result_t<F, detail::dependency_value_t<Args>...>> {
    detail::check_task<F, detail::dependency_value_t<Args>...>();
    using R = detail::task_result_t<F, detail::dependency_value_t<Args>...>;
    auto state = std::make_shared<detail::ResultState<R>>();
    if constexpr (detail::has_dependency_v<Args...>) {
      std::make_shared<detail::DependentTask<F, Args...>>(core_, options, state, f, args...)->start();
    } else {
      core_->submit(
          "apply_async", state, [&](detail::OutputBuffer& out) { detail::encode_task(out, f, args...); }, options);
    }
    return AsyncResult<R>(std::move(state));
  }

  /// Runs f(args...) in a worker and returns its result:
  /// apply_async(f, args...).get(). Blocks until the task has finished.
  /// Throws ValueError after close() or terminate(), else the task's error,
  /// as AsyncResult::get() does. Thread-safe.
  template <class F, class... Args>
    requires(!std::is_same_v<F, TaskOptions>)
  auto apply(F f, const Args&... args) -> detail::task_result_t<F, detail::dependency_value_t<Args>...> {
    return apply_async(f, args...).get();
  }
  /// As apply(f, args...), under `options` (see TaskOptions). Thread-safe.
  template <class F, class... Args>
  auto apply(const TaskOptions& options, F f, const Args&... args)
      -> detail::task_result_t<F, detail::dependency_value_t<Args>...> {
    return apply_async(options, f, args...).get();
  }

  /// Applies f to every item of any input range (a container, a view, a
  /// single-pass range such as std::views::istream); returns the results in
  /// input order (void for a void f). Blocks until all have run. Items travel
  /// in chunks of `chunksize` (0: about four chunks per worker, as Python
  /// does, but at most 4096 items per chunk, so small items go through shared
  /// memory). A single-pass range is read once, each chunk submitted as soon
  /// as it has been read; with chunksize 0, one with no size is first read to
  /// its end, to count it, as Python's map does (list(iterable)). An item
  /// that throws does not stop the others; map then throws the error of the
  /// first failed item (by position), as AsyncResult::get() would. What reading the input throws, map throws at
  /// once (the chunks already submitted are cancelled). Throws ValueError
  /// after close() or terminate(). Thread-safe.
  template <class F, std::ranges::input_range Range>
  auto map(F f, Range&& items, std::size_t chunksize = 0) {
    return map_async(f, std::forward<Range>(items), chunksize).take();
  }
  /// As map(), but returns once the input has been read and submitted, with
  /// the future of the whole result: AsyncResult<std::vector<R>>, or
  /// AsyncResult<void> for a void f (an empty range gives a ready, empty
  /// result). The items are read and serialized here, on the calling thread;
  /// does not wait for the tasks (but see PoolOptions::max_pending). Throws
  /// what reading the input throws, and ValueError after close() or
  /// terminate(). Thread-safe.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto map_async(F f, Range&& items, std::size_t chunksize = 0) {
    return map_items<false, detail::map_item_t<Range>>("map_async", f, items, chunksize);
  }
  /// As map(), with each item a tuple (or pair) unpacked into f's arguments.
  /// Blocks until all have run; throws as map(). Thread-safe.
  template <class F, std::ranges::input_range Range>
  auto starmap(F f, Range&& items, std::size_t chunksize = 0) {
    return starmap_async(f, std::forward<Range>(items), chunksize).take();
  }
  /// As map_async(), with each item unpacked as starmap() does. Returns once
  /// the input has been submitted; throws as map_async(). Thread-safe.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto starmap_async(F f, Range&& items, std::size_t chunksize = 0) {
    return map_items<true, detail::map_item_t<Range>>("starmap_async", f, items, chunksize);
  }
  /// Applies f to every item of any input range, lazily: the input is read a
  /// chunk at a time as results are consumed, with a bounded look-ahead, so an
  /// endless range works in bounded memory. Results come in input order. The
  /// range is kept (moved in, or referenced if an lvalue) while the iterator
  /// needs it. Returns at once without reading the input: the thread that
  /// consumes the IMapIterator reads it. close() reads the rest of the input
  /// of every imap whose iterator still exists, so that it still works after
  /// close() and join(); so do not close() the pool while an endless imap's
  /// iterator is alive. Once the iterator is gone, no more input is read.
  /// Throws ValueError after close() or terminate(), or if chunksize is 0.
  /// Thread-safe (the IMapIterator it returns is not).
  template <class F, std::ranges::input_range Range>
  auto imap(F f, Range&& items, std::size_t chunksize = 1) {
    return imap_chunks<true>("imap", f, std::forward<Range>(items), chunksize);
  }
  /// As imap(), with results in the order they complete. Returns at once;
  /// throws as imap(). Thread-safe.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F f, Range&& items, std::size_t chunksize = 1) {
    return imap_chunks<false>("imap_unordered", f, std::forward<Range>(items), chunksize);
  }

  /// Serializes `value` once, into new unnamed shared memory, and returns a
  /// handle to it: a task argument that costs a fixed-size handle and gives
  /// the value back in the task (decoded at most once per worker). Any
  /// pool's tasks may use the handle, not only this pool's. A local pool's
  /// workers map the memory; a procpool::mpi::Pool sends the bytes once to
  /// each rank, ahead of its first task there that carries the handle, and
  /// has the ranks drop them once the last handle and task here are gone.
  /// Blocks while it serializes (not while it is sent). Throws ValueError
  /// after close() or terminate(); Error if the memory cannot be created;
  /// what T's serialization throws. Thread-safe.
  template <class T>
  [[nodiscard]] Shared<T> share(const T& value) {
    static_assert(detail::Serializable<T> && std::is_default_constructible_v<T>,
                  "procpool: share() needs a default-constructible T serializable with cereal");
    core_->check_shares("share");
    return Shared<T>(Shared<T>::encode(value));
  }

  /// Takes no more tasks; the workers exit once every queued task has run.
  /// Does not wait for them (see join()), but first hands every live imap's
  /// remaining input over, reading it on this thread. Throws ValueError if
  /// already closed or terminated. Thread-safe.
  void close();
  /// Blocks until every worker has exited (after close(): every queued task
  /// has run) and the pool's threads have stopped; returns at once if already
  /// joined. Throws ValueError while the pool is still running (neither closed
  /// nor terminated). Thread-safe.
  void join();
  /// Stops the workers now (SIGKILL); unfinished results fail with
  /// PoolTerminated, and their then() callbacks run on this thread. Blocks
  /// only until the workers are reaped and the pool has joined; never hangs,
  /// whatever the tasks do. Also works after close(): it stops a pool whose
  /// queue is stuck behind a hung task (and releases a join() waiting on it).
  /// A second terminate() does nothing. Thread-safe.
  void terminate();

  /// The number of workers the pool keeps (a dead worker's replacement keeps
  /// it constant). Never blocks. Throws ValueError after close() or
  /// terminate(). Thread-safe.
  int size() const;

 protected:
  /// For a derived pool: the task surface over `core`, the engine that runs
  /// the tasks. Never blocks or throws.
  explicit TaskPool(std::shared_ptr<detail::Executor> core) : core_(std::move(core)) {}
  /// For a derived pool: the engine behind this surface. Never blocks or
  /// throws. Thread-safe.
  detail::Executor& executor() const noexcept { return *core_; }

 private:
  // A multi-pass range goes through map_chunks(); a single-pass one is
  // streamed (chunksize 0: from its size, or after buffering it all).
  template <bool Star, class Item, class F, class Range>
  auto map_items(const char* call, F f, Range& items, std::size_t chunksize) {
    if constexpr (std::ranges::forward_range<Range>) {
      return map_chunks<Star, Item>(call, f, items, chunksize);
    } else if constexpr (std::ranges::sized_range<Range>) {
      if (chunksize == 0) {
        chunksize = detail::auto_chunksize(static_cast<std::size_t>(std::ranges::size(items)), core_->processes());
      }
      return map_stream<Star, Item>(call, f, items, chunksize);
    } else if (chunksize == 0) {
      core_->check_running(call);  // before using the input up
      std::vector<Item> buffered;
      for (auto it = std::ranges::begin(items); it != std::ranges::end(items); ++it) {
        buffered.push_back(static_cast<Item>(*it));
      }
      return map_chunks<Star, Item>(call, f, buffered, 0);
    } else {
      return map_stream<Star, Item>(call, f, items, chunksize);
    }
  }

  template <bool Star, class Item, class F, class Range>
  auto map_chunks(const char* call, F f, Range& items, std::size_t chunksize) {
    detail::check_chunk<F, Star, Item>();
    using R = detail::item_result_t<F, Star, Item>;
    using Whole = typename detail::MapAggregate<R>::Whole;
    core_->check_running(call);
    auto whole = std::make_shared<detail::ResultState<Whole>>();
    core_->attach(*whole);
    const auto count = static_cast<std::size_t>(std::ranges::distance(items));
    if (count == 0) {
      whole->count_items(0);
      if constexpr (std::is_void_v<R>) {
        whole->set_value();
      } else {
        whole->set_value({});
      }
      return AsyncResult<Whole>(std::move(whole));
    }
    if (chunksize == 0) chunksize = detail::auto_chunksize(count, core_->processes());
    auto aggregate = std::make_shared<detail::MapAggregate<R>>(whole, count, chunksize);
    auto it = std::ranges::begin(items);
    std::vector<std::shared_ptr<detail::ChunkState<R>>> chunks;
    for (std::size_t index = 0, first = 0; first < count; ++index, first += chunksize) {
      chunks.push_back(std::make_shared<detail::ChunkState<R>>(aggregate, index, std::min(chunksize, count - first)));
    }
    whole->set_parts({chunks.begin(), chunks.end()});  // cancel() on the whole cancels every chunk
    for (std::size_t index = 0; index < chunks.size(); ++index) {
      const std::size_t n = chunks[index]->count();
      try {
        core_->submit(
            call, chunks[index],
            [&](detail::OutputBuffer& out) { detail::encode_chunk<F, Star, Item>(out, f, it, n); }, TaskOptions{});
      } catch (...) {
        // Closed under our feet: nothing more goes out; the rest fail with the reason.
        if (index == 0) throw;
        for (std::size_t rest = index; rest < chunks.size(); ++rest) chunks[rest]->fail(std::current_exception());
        break;
      }
      std::ranges::advance(it, static_cast<std::ranges::range_difference_t<Range>>(n));
    }
    return AsyncResult<Whole>(std::move(whole));
  }

  // A single-pass input, read once a chunk at a time, each chunk submitted
  // as soon as it is read (so its tasks run while the rest is read).
  template <bool Star, class Item, class F, class Range>
  auto map_stream(const char* call, F f, Range& items, std::size_t chunksize) {
    detail::check_chunk<F, Star, Item>();
    using R = detail::item_result_t<F, Star, Item>;
    using Whole = typename detail::MapAggregate<R>::Whole;
    core_->check_running(call);
    auto whole = std::make_shared<detail::ResultState<Whole>>();
    core_->attach(*whole);
    auto aggregate = std::make_shared<detail::MapAggregate<R>>(whole, chunksize);
    std::vector<std::weak_ptr<detail::ResultStateBase>> parts;
    std::vector<Item> chunk;
    chunk.reserve(std::min(chunksize, detail::max_auto_chunksize));
    auto it = std::ranges::begin(items);
    // Steps past the last item read only when the next one is needed: a
    // stream is not asked for more before the chunk read so far is submitted.
    bool step = false;
    for (std::size_t index = 0;; ++index) {
      chunk.clear();
      try {
        while (chunk.size() < chunksize) {
          if (step) ++it;
          step = false;
          if (it == std::ranges::end(items)) break;
          chunk.push_back(static_cast<Item>(*it));
          step = true;
        }
      } catch (...) {
        // The caller's own input failed, on the caller's thread: throw it here.
        whole->set_parts(std::move(parts));
        cancel_quietly(*whole);
        throw;
      }
      if (chunk.empty()) break;
      auto state = std::make_shared<detail::ChunkState<R>>(aggregate, index, chunk.size());
      aggregate->add_chunk(index, chunk.size());
      parts.push_back(state);
      try {
        core_->submit(
            call, state,
            [&](detail::OutputBuffer& out) {
              detail::encode_chunk<F, Star, Item>(out, f, chunk.begin(), chunk.size());
            },
            TaskOptions{});
      } catch (...) {
        // Closed under our feet: the input stops here, and the whole fails with the reason.
        if (index == 0) throw;
        state->fail(std::current_exception());
        break;
      }
    }
    whole->set_parts(std::move(parts));  // cancel() on the whole cancels every chunk
    aggregate->seal();
    return AsyncResult<Whole>(std::move(whole));
  }

  static void cancel_quietly(detail::ResultStateBase& state) noexcept {
    try {
      state.cancel();
    } catch (...) {
      // Only a failing mutex: the chunks then run, and their results are dropped.
    }
  }

  template <bool Ordered, class F, class Range>
  auto imap_chunks(const char* call, F f, Range&& items, std::size_t chunksize) {
    using Item = detail::map_item_t<Range>;
    detail::check_chunk<F, false, Item>();
    using R = detail::item_result_t<F, false, Item>;
    static_assert(!std::is_void_v<R>, "procpool: imap needs a callable that returns a value; use map for void ones");
    core_->check_running(call);
    if (chunksize == 0) {
      throw ValueError(std::string(core_->display_name()) + "::" + call + ": chunksize must be at least 1");
    }
    // Keep every worker busy with a chunk queued behind it, and no more.
    const auto max_in_flight = static_cast<std::size_t>(2 * core_->processes() + 2);
    auto state = std::make_shared<detail::IMapState<R>>(Ordered, max_in_flight);
    using Stored = std::conditional_t<std::is_lvalue_reference_v<Range>, Range, std::remove_cvref_t<Range>>;
    struct Input {
      Stored range;
      std::optional<std::ranges::iterator_t<std::remove_reference_t<Stored>>> it;
    };
    auto input = std::make_shared<Input>(Input{std::forward<Range>(items), std::nullopt});
    std::weak_ptr<detail::IMapState<R>> weak_state = state;
    state->set_producer([core = core_, input, f, chunksize, weak_state,
                         call](std::size_t index) -> typename detail::IMapState<R>::Produced {
      typename detail::IMapState<R>::Produced produced;
      std::vector<Item> chunk;
      try {
        if (!input->it) input->it = std::ranges::begin(input->range);
        while (chunk.size() < chunksize && *input->it != std::ranges::end(input->range)) {
          chunk.push_back(static_cast<Item>(**input->it));
          ++*input->it;
        }
      } catch (...) {
        produced.input_error = std::current_exception();
      }
      auto sink = weak_state.lock();
      if (chunk.empty() || !sink) return produced;
      auto chunk_state = std::make_shared<detail::ChunkState<R>>(sink, index, chunk.size());
      core->submit(
          call, chunk_state,
          [&](detail::OutputBuffer& out) { detail::encode_chunk<F, false, Item>(out, f, chunk.begin(), chunk.size()); },
          TaskOptions{});
      sink->track(chunk_state);  // cancelled if the iterator goes first
      produced.submitted = true;
      produced.items = chunk.size();
      return produced;
    });
    // The iterator's handle is the consumer's: in-flight chunks hold the state
    // itself, so only this handle tells close() whether anyone still reads
    // the results. When its last copy goes, the imap is abandoned.
    // The deleter lets go of the state at once: the pool's weak reference to
    // the handle would otherwise keep the deleter, and so the state, alive.
    std::shared_ptr<detail::IMapState<R>> consumer(state.get(), [state](detail::IMapState<R>* s) mutable {
      s->abandon();
      state.reset();
    });
    core_->register_flusher(consumer);
    return IMapIterator<R>(std::move(consumer));
  }

  // Shared with the results, which pump it while they wait (weakly).
  std::shared_ptr<detail::Executor> core_;
};

}  // namespace procpool
