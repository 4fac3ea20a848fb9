// A persistent pool of worker threads for the thread_pool and pinned_pool models (and the
// dispatch micro-benchmarks).
//
// Two ways to hand it work:
//   run_on_all(body): body(w) runs once on every pool thread w, concurrently; the caller only
//     waits. This is what the models use (harness/models/pool_model.cpp): per-worker state (bound
//     PU, perf counters opened in on_start) belongs to pool thread w, so worker w is always that
//     thread and never the caller.
//   for_each_index(n, fn): fn(i) for every i in [0, n), each claimant taking the next index from
//     a shared counter, one index per claim. The calling thread is a claimant too, as in
//     tbb::task_arena::execute and an OpenMP parallel region: a pool of N threads gives N + 1-way
//     parallelism (the dispatch benchmarks use 1 pool thread + the caller for 2 threads).
//
// Hand-off (one cache line each, see the layout below):
//   start: the caller writes the job into `start_` and bumps its epoch (release). Pool threads
//     spin on the epoch for a bounded number of pauses, then set kSleeper in the same word and
//     sleep on it (C++20 atomic wait: a futex on Linux). The caller calls notify_all only when
//     kSleeper was set, so back-to-back batches cost no system call at all.
//   finish: each pool thread decrements `pending_` (release). The caller sets kCallerAsleep in the
//     same word and sleeps; the thread that takes the count to zero notifies only when that bit is
//     set. In for_each_index the caller first spins for a bounded number of pauses (it has just
//     run out of indices, so the pool threads are finishing one index at most); in run_on_all it
//     sleeps at once (it is an extra thread there, and its spinning would take a core from a pool
//     thread whenever the pool has as many threads as there are cores).
// Both flags live in the word they guard, so each sleep/notify decision is one read-modify-write
// on one atomic: there is no store-then-load (Dekker) pattern and no seq_cst is needed.
//
// Exceptions: the first exception thrown by body or fn, on any thread, is rethrown by run_on_all
// or for_each_index once every pool thread has finished the batch; for_each_index then hands out
// no further indices (those not yet claimed do not run). The pool stays usable.
//
// No mutex is held on the hot path. The only lock, error_mutex_, guards the captured exception; it
// is a leaf lock (nothing else is acquired while holding it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace concbench {

class ThreadPool {
 public:
  // Rounds of a bounded busy wait (a pause each, a sched_yield every 64th): about 65 µs on the
  // reference VM (25 ns per pause on its AMD EPYC), about one futex wake-up there (35-60 µs). Long
  // enough that back-to-back batches never sleep, short enough that an idle pool thread stops
  // burning its core soon after the last batch.
  static constexpr uint32_t kDefaultSpin = 2000;

  // Starts `workers` threads; each runs on_start(worker) first (binding, counters), in its own
  // thread, before the constructor returns; on_stop(worker) runs on the same thread when the pool
  // is destroyed. `spin_iterations` bounds every busy wait (pool threads waiting for a batch, the
  // caller waiting for the pool threads to finish) before it sleeps; 0: sleep at once.
  ThreadPool(int workers, std::function<void(int)> on_start = {},
             std::function<void(int)> on_stop = {}, uint32_t spin_iterations = kDefaultSpin);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs body(worker) on every pool thread concurrently and returns when all have returned. Not
  // reentrant: one caller at a time.
  void run_on_all(const std::function<void(int)>& body);

  // Runs fn(i) for i in [0, n) on the pool threads and the calling thread, each claiming the next
  // index from a shared counter (one index per claim). fn is called directly, not through a
  // std::function. Not reentrant.
  template <class F>
  void for_each_index(uint64_t n, F&& fn);

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  // A batch as the pool threads see it: job(ctx, worker).
  using Job = void (*)(void* ctx, int worker);

  static constexpr uint32_t kSleeper = 1;  // start_.epoch: some pool thread sleeps on it
  static constexpr uint32_t kEpochStep = 2;
  static constexpr uint32_t kCallerAsleep = 1u << 31;  // pending_: the caller sleeps on it
  static constexpr uint32_t kCountMask = kCallerAsleep - 1;
  static constexpr size_t kCacheLine = 64;

  void worker_main(int w);
  // Publishes job to every pool thread; returns at once.
  void start(Job job, void* ctx);
  // Waits until every pool thread has finished the batch start() published (spinning for at most
  // `spin` pauses, then sleeping), then rethrows the batch's first exception, if any.
  void finish(uint32_t spin);
  void record_error(std::exception_ptr e) noexcept;

  template <class F>
  struct IndexJob {
    F* fn;
    uint64_t n;
    ThreadPool* pool;
    static void claim_all(void* self, int /*worker*/) {
      auto& job = *static_cast<IndexJob*>(self);
      auto& next = job.pool->next_.value;
      const uint64_t n = job.n;  // a local: fn cannot make the loop reload it
      // Relaxed: the counter only has to hand out distinct indices (fetch_add's atomicity does
      // that); the indices' effects reach the caller through pending_ (release/acquire) and the
      // caller's own program order.
      for (uint64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
           i = next.fetch_add(1, std::memory_order_relaxed)) {
        try {
          (*job.fn)(i);
        } catch (...) {
          // Relaxed: only stops the others claiming; the exception itself travels under
          // error_mutex_. Every later fetch_add returns >= n.
          next.store(n, std::memory_order_relaxed);
          job.pool->record_error(std::current_exception());
          return;
        }
      }
    }
  };

  std::vector<std::thread> threads_;
  std::function<void(int)> on_stop_;
  const uint32_t spin_;

  // Written by the caller only, read by every pool thread at the start of each batch: the epoch
  // and the job it publishes share one line, so a pool thread takes one miss to start a batch.
  struct alignas(kCacheLine) Start {
    std::atomic<uint32_t> epoch{0};  // epoch * kEpochStep | kSleeper
    bool stop = false;               // plain: published by epoch's release, read after acquire
    Job job = nullptr;               // likewise
    void* ctx = nullptr;             // likewise
  };
  // Written by every pool thread once per batch (and reset by the caller): its own line, so the
  // decrements do not steal the start line from threads still spinning on it.
  struct alignas(kCacheLine) Pending {
    std::atomic<uint32_t> value{0};  // pool threads still running the batch | kCallerAsleep
  };
  // The claim counter for for_each_index, hammered by every claimant: its own line, so claims do
  // not invalidate the start or pending lines.
  struct alignas(kCacheLine) Next {
    std::atomic<uint64_t> value{0};
  };
  // Cold: touched only when a body or fn throws.
  struct alignas(kCacheLine) Error {
    std::atomic<bool> any{false};  // lets finish() skip the lock when nothing was thrown
    std::mutex mutex;              // guards first; a leaf lock
    std::exception_ptr first;
  };

  Start start_;
  Pending pending_;
  Next next_;
  Error error_;

  static_assert(sizeof(Start) == kCacheLine, "the start line holds epoch and job, nothing else");
  static_assert(sizeof(Pending) == kCacheLine && sizeof(Next) == kCacheLine,
                "pending_ and next_ each fill one cache line");
  static_assert(std::atomic<uint32_t>::is_always_lock_free &&
                    std::atomic<uint64_t>::is_always_lock_free,
                "the hand-off relies on lock-free atomics (futex-backed wait)");
};

template <class F>
void ThreadPool::for_each_index(uint64_t n, F&& fn) {
  if (n == 0) return;
  using Fn = std::remove_reference_t<F>;
  IndexJob<Fn> job{&fn, n, this};
  // Relaxed: published to the pool threads by start()'s release of the epoch.
  next_.value.store(0, std::memory_order_relaxed);
  start(&IndexJob<Fn>::claim_all, &job);
  IndexJob<Fn>::claim_all(&job, -1);  // the caller claims too
  // The caller spins: the pool threads are finishing their last index at most, and the caller's
  // own core would otherwise idle.
  finish(spin_);
}

}  // namespace concbench
