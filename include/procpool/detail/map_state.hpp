// The parent side of the map family: chunks reporting to a whole.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "procpool/detail/chunk.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/errors.hpp"
#include "procpool/progress.hpp"

namespace procpool::detail {

// map_async: collects every chunk, then completes one result with all the
// values in input order, or with the error of the first failed item.
template <class R>
class MapAggregate final : public ChunkSink<R> {
 public:
  using Whole = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;

  // `items` known: that many items, in chunks of `chunksize`.
  MapAggregate(std::shared_ptr<ResultState<Whole>> whole, std::size_t items, std::size_t chunksize)
      : whole_(std::move(whole)), chunksize_(chunksize), chunks_left_((items + chunksize - 1) / chunksize) {
    whole_->count_items(items);
    if constexpr (!std::is_void_v<R>) values_.resize(items);
  }
  // Count unknown (a single-pass input): add_chunk() each chunk, then seal().
  MapAggregate(std::shared_ptr<ResultState<Whole>> whole, std::size_t chunksize)
      : whole_(std::move(whole)), chunksize_(chunksize), chunks_left_(0), sealed_(false) {
    whole_->count_items(0);
  }

  // Before chunk `index` (of `count` items) is submitted: it may finish at once.
  void add_chunk(std::size_t index, std::size_t count) {
    std::lock_guard lock(mutex_);
    ++chunks_left_;
    items_ = index * chunksize_ + count;
    if constexpr (!std::is_void_v<R>) values_.resize(items_);
  }
  // Every chunk has been added: the whole completes once they have finished.
  void seal() noexcept {
    std::unique_lock lock(mutex_);
    sealed_ = true;
    whole_->count_items(items_);
    if (chunks_left_ == 0) finish(lock);
  }

  void chunk_done(std::size_t index, ChunkState<R>& chunk) noexcept override {
    whole_->add_items_done(chunk.count());
    std::unique_lock lock(mutex_);
    const std::size_t first = index * chunksize_;
    if (chunk.error()) {
      note_error(first, chunk.error());
    } else {
      auto& outcomes = chunk.outcomes();
      for (std::size_t i = 0; i < outcomes.size(); ++i) {
        if (outcomes[i].error) {
          note_error(first + i, outcomes[i].error);
        } else if constexpr (!std::is_void_v<R>) {
          values_[first + i] = std::move(outcomes[i].value);
        }
      }
    }
    if (--chunks_left_ != 0 || !sealed_) return;
    finish(lock);
  }

 private:
  void finish(std::unique_lock<std::mutex>& lock) noexcept {
    lock.unlock();
    if (error_) {
      whole_->fail(error_);
    } else if constexpr (std::is_void_v<R>) {
      whole_->set_value();
    } else {
      whole_->set_value(std::move(values_));
    }
  }

  void note_error(std::size_t position, std::exception_ptr error) {
    if (!error_ || position < error_position_) {
      error_ = std::move(error);
      error_position_ = position;
    }
  }

  std::shared_ptr<ResultState<Whole>> whole_;
  std::size_t chunksize_;
  std::mutex mutex_;
  std::size_t chunks_left_;
  bool sealed_ = true;
  std::size_t items_ = 0;  // added so far, when the count is not known up front
  std::vector<std::conditional_t<std::is_void_v<R>, char, R>> values_;
  std::exception_ptr error_;
  std::size_t error_position_ = 0;
};

// Something a pool can ask, at close(), to hand over all of its remaining input.
class InputFlusher {
 public:
  virtual void flush_input() noexcept = 0;

 protected:
  ~InputFlusher() = default;
};

// imap / imap_unordered: pulls input a chunk at a time, keeps a bounded number
// of chunks in flight, and hands results out one item at a time.
template <class R>
class IMapState final : public ChunkSink<R>, public InputFlusher, public std::enable_shared_from_this<IMapState<R>> {
 public:
  struct Chunk {
    std::size_t index = 0;
    std::vector<ItemOutcome<R>> outcomes;
    std::exception_ptr error;  // the whole chunk failed (worker lost, ...) or the input threw here
  };
  // What pulling one chunk of input did.
  struct Produced {
    bool submitted = false;         // a chunk with the given index went to the pool
    std::size_t items = 0;          // the items in that chunk
    std::exception_ptr input_error;  // the input threw after that (or the pool refused the chunk)
  };
  // Pulls up to one chunk of input and submits it as chunk `index`.
  using Producer = std::function<Produced(std::size_t index)>;

  IMapState(bool ordered, std::size_t max_in_flight) : ordered_(ordered), max_in_flight_(max_in_flight) {}

  void set_producer(Producer producer) { producer_ = std::move(producer); }

  // The state of a chunk just submitted, so that abandon() can cancel it.
  void track(const std::shared_ptr<ResultStateBase>& chunk) {
    {
      std::lock_guard lock(mutex_);
      if (!abandoned_) {
        // Forget finished chunks now and then: an endless imap stays bounded.
        if (chunks_.size() >= 2 * max_in_flight_ + 8) {
          std::erase_if(chunks_, [](const std::weak_ptr<ResultStateBase>& weak) {
            const auto c = weak.lock();
            return !c || c->ready();
          });
        }
        chunks_.push_back(chunk);
        return;
      }
    }
    chunk->cancel_unstarted();  // submitted by a close() flushing the input as the iterator went
  }

  // The last iterator is gone: nobody will consume, so no more input is read
  // (not even by close()), the range is let go, and the chunks no worker has
  // started are cancelled. Chunks in flight finish unseen; they keep this
  // state alive until they do. Never waits for a task.
  void abandon() noexcept {
    std::vector<std::weak_ptr<ResultStateBase>> chunks;
    Producer dropped;  // destroyed after the locks: it may hold the last reference to the pool
    {
      std::lock_guard input(input_mutex_);
      input_done_.store(true);
      dropped.swap(producer_);
    }
    {
      std::lock_guard lock(mutex_);
      abandoned_ = true;
      chunks.swap(chunks_);
    }
    for (const auto& weak : chunks) {
      if (const auto chunk = weak.lock()) {
        try {
          chunk->cancel_unstarted();
        } catch (...) {  // only a failing mutex: the chunk then runs, its result unread
        }
      }
    }
  }

  void chunk_done(std::size_t index, ChunkState<R>& chunk) noexcept override {
    items_done_.fetch_add(chunk.count(), std::memory_order_relaxed);
    Chunk done{index, {}, chunk.error()};
    if (!done.error) done.outcomes = std::move(chunk.outcomes());
    {
      std::lock_guard lock(mutex_);
      ++chunks_finished_;
      if (ordered_) {
        finished_.emplace(index, std::move(done));
      } else {
        ready_.push_back(std::move(done));
      }
    }
    changed_.notify_all();
  }

  void flush_input() noexcept override {
    std::lock_guard input(input_mutex_);
    while (!input_done_.load()) produce_one();
  }

  // Items arrived (consumed or not) and read: the total once the input has ended.
  Progress progress() const noexcept {
    const std::size_t done = items_done_.load(std::memory_order_relaxed);
    if (!input_done_.load()) return {done, 0};
    return {done, items_read_.load(std::memory_order_relaxed)};
  }

  // Waits at most `timeout` for every item to arrive, without consuming any:
  // reads more input whenever fewer than max_in_flight_ chunks are running
  // (the finished ones wait to be consumed). Returns whether all have arrived.
  bool wait_arrived(std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard input(input_mutex_);
        while (!input_done_.load()) {
          {
            std::lock_guard lock(mutex_);
            if (chunks_submitted_ - chunks_finished_ >= max_in_flight_) break;
          }
          produce_one();
        }
      }
      std::unique_lock lock(mutex_);
      const auto all_arrived = [&] { return input_done_.load() && chunks_finished_ == chunks_submitted_; };
      if (all_arrived()) return true;
      // A finished chunk makes room for more input (or was the last one).
      const std::size_t seen = chunks_finished_;
      if (!changed_.wait_until(lock, deadline, [&] { return chunks_finished_ != seen || all_arrived(); })) {
        return false;
      }
    }
  }

  // The next item's value; nullopt at the end; throws the item's error, or
  // TimeoutError when `timeout` (negative: none) passes first.
  std::optional<typename ItemOutcome<R>::Value> next(std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      top_up();
      std::unique_lock lock(mutex_);
      if (current_ && position_ < current_->outcomes.size()) return take(lock);
      if (current_) {
        current_.reset();
        --in_flight_;
        ++consumed_chunks_;
        continue;  // refill before waiting
      }
      auto available = [&] {
        return ordered_ ? finished_.count(consumed_chunks_) != 0 : !ready_.empty();
      };
      if (!available()) {
        if (input_done_.load() && in_flight_ == 0) return std::nullopt;
        if (timeout.count() < 0) {
          changed_.wait(lock, available);
        } else if (!changed_.wait_until(lock, deadline, available)) {
          throw TimeoutError("procpool::IMapIterator::next: timed out");
        }
      }
      if (ordered_) {
        auto it = finished_.find(consumed_chunks_);
        current_ = std::move(it->second);
        finished_.erase(it);
      } else {
        current_ = std::move(ready_.front());
        ready_.pop_front();
      }
      position_ = 0;
      if (current_->error) {
        // A whole chunk failed: its error surfaces once, at its first item.
        auto error = current_->error;
        current_->outcomes.clear();
        throw_later(lock, error);
      }
    }
  }

 private:
  typename ItemOutcome<R>::Value take(std::unique_lock<std::mutex>& lock) {
    auto& outcome = current_->outcomes[position_++];
    if (outcome.error) throw_later(lock, outcome.error);
    return std::move(outcome.value);
  }

  [[noreturn]] void throw_later(std::unique_lock<std::mutex>& lock, const std::exception_ptr& error) {
    lock.unlock();
    std::rethrow_exception(error);
  }

  void top_up() {
    std::lock_guard input(input_mutex_);
    while (!input_done_.load()) {
      {
        std::lock_guard lock(mutex_);
        if (in_flight_ >= max_in_flight_) return;
      }
      produce_one();
    }
  }

  // Under input_mutex_.
  void produce_one() noexcept {
    Produced produced;
    try {
      produced = producer_(next_index_);
    } catch (...) {
      produced.input_error = std::current_exception();  // the pool refused the chunk (closed or terminated)
    }
    {
      std::lock_guard lock(mutex_);
      if (produced.submitted) {
        ++in_flight_;
        ++next_index_;
        ++chunks_submitted_;
        items_read_.fetch_add(produced.items, std::memory_order_relaxed);  // before input_done_ is set
      }
      if (produced.input_error) {
        // That position raises the error; the input ends there.
        ++in_flight_;
        Chunk failed{next_index_++, {}, produced.input_error};
        if (ordered_) {
          finished_.emplace(failed.index, std::move(failed));
        } else {
          ready_.push_back(std::move(failed));
        }
      }
      if (produced.input_error || !produced.submitted) input_done_.store(true);
    }
    changed_.notify_all();
  }

 private:
  const bool ordered_;
  const std::size_t max_in_flight_;
  Producer producer_;

  std::mutex input_mutex_;  // the input range is read by one thread at a time
  std::atomic<bool> input_done_{false};
  std::size_t next_index_ = 0;
  std::atomic<std::size_t> items_read_{0};  // in the chunks submitted
  std::atomic<std::size_t> items_done_{0};  // in the chunks finished

  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t in_flight_ = 0;       // chunks submitted and not yet fully handed out
  std::size_t consumed_chunks_ = 0;  // ordered: chunks handed out
  std::size_t chunks_submitted_ = 0;
  std::size_t chunks_finished_ = 0;  // chunk_done() called, consumed or not
  std::vector<std::weak_ptr<ResultStateBase>> chunks_;  // submitted, for abandon()
  bool abandoned_ = false;
  std::map<std::size_t, Chunk> finished_;
  std::deque<Chunk> ready_;
  std::optional<Chunk> current_;
  std::size_t position_ = 0;
};

}  // namespace procpool::detail
