#include "concbench/thread_pool.hpp"

#include <exception>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONCBENCH_PAUSE() _mm_pause()
#else
#define CONCBENCH_PAUSE() ((void)0)
#endif

namespace concbench {

ThreadPool::ThreadPool(int workers, std::function<void(int)> on_start,
                       std::function<void(int)> on_stop, uint32_t spin_iterations)
    : on_stop_(std::move(on_stop)) {
  threads_.reserve(static_cast<size_t>(workers));
  try {
    for (int w = 0; w < workers; ++w) {
      threads_.emplace_back([this, w, spin_iterations, on_start] {
        if (on_start) on_start(w);
        // Release: on_start's effects (bound CPU, opened counters) are visible to the
        // constructor's caller once it sees the count.
        started_.fetch_add(1, std::memory_order_release);
        started_.notify_one();
        worker_main(w, spin_iterations);
      });
    }
  } catch (...) {
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
  for (int s = started_.load(std::memory_order_acquire); s < workers;
       s = started_.load(std::memory_order_acquire))
    started_.wait(s, std::memory_order_acquire);
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  // Release: publishes stop_ to workers that acquire the new generation.
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker_main(int w, uint32_t spin_iterations) {
  uint64_t seen = 0;
  for (;;) {
    // Spin first: back-to-back batches then cost no futex wake-up. Bounded, so an idle pool
    // sleeps instead of stealing the CPU from whoever runs.
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (uint32_t i = 0; g == seen && i < spin_iterations; ++i) {
      CONCBENCH_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_) break;
    (*body_)(w);
    // acq_rel: the body's writes are released to the caller, who acquires pending_ == 0.
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
  if (on_stop_) on_stop_(w);
}

void ThreadPool::run_on_all(const std::function<void(int)>& body) {
  body_ = &body;
  pending_.store(size(), std::memory_order_relaxed);
  // Release: body_ and pending_ are published with the generation the workers acquire.
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (int p = pending_.load(std::memory_order_acquire); p != 0;
       p = pending_.load(std::memory_order_acquire))
    pending_.wait(p, std::memory_order_acquire);
}

void ThreadPool::for_each_index(uint64_t n, const std::function<void(uint64_t)>& fn) {
  struct alignas(64) Next {
    std::atomic<uint64_t> v{0};
  } next;
  run_on_all([&](int) {
    // Relaxed: the counter only hands out distinct indices; completion is published through
    // pending_ in run_on_all.
    for (uint64_t i = next.v.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.v.fetch_add(1, std::memory_order_relaxed))
      fn(i);
  });
}

}  // namespace concbench
