// thread_pool_baseline.hpp - the classic thread pool used as a comparison
// baseline in procpool's benchmarks.
//
// This is deliberately the textbook design that most code bases ship and that
// "thread pool vs X" comparisons use: one std::mutex guarding one
// std::deque<std::function<void()>>, a std::condition_variable to wake idle
// workers, N std::thread workers, and submit() returning a std::future via
// std::packaged_task. It is written competently (no busy waiting, notify
// outside the lock, clean shutdown) but not tuned: no work stealing, no
// lock-free queue, no batching, no small-buffer tricks.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace procpool_bench {

class ThreadPool {
public:
    explicit ThreadPool(std::size_t n_threads) {
        workers_.reserve(n_threads);
        for (std::size_t i = 0; i < n_threads; ++i)
            workers_.emplace_back([this] { worker_loop(); });
    }

    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Drains the queue: tasks already submitted still run before join.
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }

    // Queue f(a...) and return a future for its result. The arguments are
    // copied/moved into the task, like Python's apply_async(f, args).
    template <class F, class... A>
    auto submit(F f, A... a) -> std::future<std::invoke_result_t<F, A...>> {
        using R = std::invoke_result_t<F, A...>;
        // std::function requires a copyable callable and packaged_task is
        // move-only, hence the shared_ptr (the usual idiom).
        auto task = std::make_shared<std::packaged_task<R()>>(
            [f = std::move(f), ... a = std::move(a)]() mutable {
                return f(std::move(a)...);
            });
        std::future<R> result = task->get_future();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            queue_.emplace_back([task] { (*task)(); });
        }
        cv_.notify_one();
        return result;
    }

    std::size_t size() const noexcept { return workers_.size(); }

private:
    void worker_loop() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping and fully drained
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            job();  // exceptions are captured into the future by packaged_task
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;  // last: started after the rest exists
};

}  // namespace procpool_bench
