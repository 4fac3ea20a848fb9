// A persistent pool of worker threads for the thread_pool and pinned_pool models (and the
// dispatch micro-benchmarks). The pool only runs a body on every worker at once and waits for all
// of them; how work is split (a shared item counter) is the caller's business.
//
// Hand-off: the caller publishes the body and bumps `generation_` (release); workers spin briefly,
// then sleep on it with C++20 atomic wait (a futex on Linux). Each worker decrements `pending_`
// when done; the caller sleeps on `pending_` until it reaches zero. So a dispatch costs one
// wake-up per sleeping worker and one for the caller, and nothing when everyone is spinning.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace concbench {

class ThreadPool {
 public:
  // Starts `workers` threads; each runs on_start(worker) first (binding, counters), in its own
  // thread, before the constructor returns. `spin_iterations` bounds the busy wait before a
  // worker sleeps (0: sleep at once).
  ThreadPool(int workers, std::function<void(int)> on_start = {},
             std::function<void(int)> on_stop = {}, uint32_t spin_iterations = 4000);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs body(worker) on every worker concurrently and returns when all have returned. Not
  // reentrant: one caller at a time.
  void run_on_all(const std::function<void(int)>& body);

  // Runs fn(i) for i in [0, n) on the workers, each claiming the next index from a shared
  // counter: the per-task dispatch the micro-benchmarks measure.
  void for_each_index(uint64_t n, const std::function<void(uint64_t)>& fn);

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void worker_main(int w, uint32_t spin_iterations);

  std::vector<std::thread> threads_;
  std::function<void(int)> on_stop_;
  const std::function<void(int)>* body_ = nullptr;  // published by generation_'s release
  bool stop_ = false;                               // likewise
  // Each on its own cache line: workers poll generation_ while they finish into pending_.
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> started_{0};
  static_assert(sizeof(std::atomic<uint64_t>) <= 64, "one counter per cache line");
};

}  // namespace concbench
