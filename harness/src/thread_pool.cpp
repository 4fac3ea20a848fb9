#include "concbench/thread_pool.hpp"

#include <cstddef>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONCBENCH_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define CONCBENCH_PAUSE() __asm__ __volatile__("yield")
#else
#define CONCBENCH_PAUSE() ((void)0)
#endif

namespace concbench {
namespace {

// One round of a bounded busy wait. Mostly a pause; every kYieldEvery-th round a sched_yield, so
// that a thread this one is waiting for, if it is queued on this very core (more threads than
// cores: the caller of run_on_all with a full pool, or another process), gets the core instead of
// waiting for the spin to run out or for a scheduler tick.
constexpr uint32_t kYieldEvery = 64;
inline void spin_round(uint32_t i) {
  if (i % kYieldEvery == kYieldEvery - 1)
    std::this_thread::yield();
  else
    CONCBENCH_PAUSE();
}

}  // namespace

// The layout the header's comments promise: each hot word on a line of its own.
static_assert(alignof(ThreadPool) >= 64, "ThreadPool's hot lines are cache-line aligned");

ThreadPool::ThreadPool(int workers, std::function<void(int)> on_start,
                       std::function<void(int)> on_stop, uint32_t spin_iterations)
    : on_stop_(std::move(on_stop)), spin_(spin_iterations) {
  std::atomic<int> started{0};
  threads_.reserve(static_cast<size_t>(workers));
  try {
    for (int w = 0; w < workers; ++w) {
      threads_.emplace_back([this, w, &started, &on_start] {
        if (on_start) on_start(w);
        // Release: on_start's effects (bound CPU, opened counters) are visible to the
        // constructor's caller, which acquires the count.
        started.fetch_add(1, std::memory_order_release);
        started.notify_one();
        worker_main(w);
      });
    }
  } catch (...) {
    // Thread creation failed: stop the ones that exist. start() publishes stop_.
    start_.stop = true;
    start(nullptr, nullptr);
    for (auto& t : threads_) t.join();
    throw;
  }
  // `started` and on_start live on this frame: wait until every thread is past them.
  for (int s = started.load(std::memory_order_acquire); s < workers;
       s = started.load(std::memory_order_acquire))
    started.wait(s, std::memory_order_acquire);
}

ThreadPool::~ThreadPool() {
  start_.stop = true;  // published by start()'s release
  start(nullptr, nullptr);
  for (auto& t : threads_) t.join();
}

void ThreadPool::start(Job job, void* ctx) {
  start_.job = job;
  start_.ctx = ctx;
  error_.any.store(false, std::memory_order_relaxed);  // published by the release below
  // Relaxed: the count is published with the epoch below; no pool thread touches pending_ before
  // it has acquired that epoch, and the previous batch's decrements all happened before finish()
  // returned.
  pending_.value.store(static_cast<uint32_t>(threads_.size()), std::memory_order_relaxed);
  // Release: publishes job, ctx, stop, pending_ and next_ (written by for_each_index) to every
  // pool thread that acquires the new epoch. The CAS clears kSleeper in the same step, so the
  // sleepers it reports are exactly those that must be woken: a thread that sets kSleeper after
  // this CAS sees the new epoch in its own fetch_or's result and does not sleep.
  uint32_t old = start_.epoch.load(std::memory_order_relaxed);
  while (!start_.epoch.compare_exchange_weak(
      old, (old & ~kSleeper) + kEpochStep, std::memory_order_release, std::memory_order_relaxed)) {
  }
  if (old & kSleeper) start_.epoch.notify_all();
}

void ThreadPool::finish(uint32_t spin) {
  // Acquire (every load here): the last decrement read ends a release sequence made of every pool
  // thread's fetch_sub, so all of the batch's writes on the pool threads are visible after it.
  uint32_t p = pending_.value.load(std::memory_order_acquire);
  for (uint32_t i = 0; p != 0 && i < spin; ++i) {
    spin_round(i);
    p = pending_.value.load(std::memory_order_acquire);
  }
  if (p != 0) {
    // Announce the sleep in the word the pool threads decrement: the one whose decrement brings
    // the count to zero sees the bit in its fetch_sub's result and notifies.
    p = pending_.value.fetch_or(kCallerAsleep, std::memory_order_acquire) | kCallerAsleep;
    while ((p & kCountMask) != 0) {
      pending_.value.wait(p, std::memory_order_acquire);
      p = pending_.value.load(std::memory_order_acquire);
    }
  }
  // Relaxed: written before the decrements that finish() just acquired.
  if (error_.any.load(std::memory_order_relaxed)) {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lock(error_.mutex);
      e = std::exchange(error_.first, nullptr);
    }
    if (e) std::rethrow_exception(e);
  }
}

void ThreadPool::record_error(std::exception_ptr e) noexcept {
  std::lock_guard<std::mutex> lock(error_.mutex);
  if (!error_.first) error_.first = std::move(e);
  // Relaxed: finish() reads it after acquiring pending_, which this thread (or the caller itself)
  // decrements after this store.
  error_.any.store(true, std::memory_order_relaxed);
}

void ThreadPool::worker_main(int w) {
  uint32_t seen = 0;  // the epoch (kSleeper masked off) of the last batch this thread ran
  for (;;) {
    // Acquire (every load of the epoch): pairs with start()'s release, for job, ctx and stop.
    // Spin first: back-to-back batches then cost no futex wake-up. Bounded, so an idle pool
    // sleeps instead of stealing the CPU from whoever runs.
    uint32_t e = start_.epoch.load(std::memory_order_acquire);
    for (uint32_t i = 0; (e & ~kSleeper) == seen && i < spin_; ++i) {
      spin_round(i);
      e = start_.epoch.load(std::memory_order_acquire);
    }
    while ((e & ~kSleeper) == seen) {
      // Announce the sleep in the epoch word itself; the fetch_or's result tells whether a new
      // epoch came first (then do not sleep). start()'s CAS either sees the bit or publishes an
      // epoch this fetch_or returns.
      e = start_.epoch.fetch_or(kSleeper, std::memory_order_acquire);
      if ((e & ~kSleeper) != seen) break;
      start_.epoch.wait(e | kSleeper, std::memory_order_acquire);
      e = start_.epoch.load(std::memory_order_acquire);
    }
    seen = e & ~kSleeper;
    if (start_.stop) break;
    try {
      start_.job(start_.ctx, w);
    } catch (...) {
      record_error(std::current_exception());
    }
    // Release: the batch's writes (and record_error's) reach the caller, who acquires pending_.
    // The job's ctx may be gone as soon as this decrement is seen, so nothing after it touches
    // the batch.
    const uint32_t before = pending_.value.fetch_sub(1, std::memory_order_release);
    if ((before & kCountMask) == 1 && (before & kCallerAsleep)) pending_.value.notify_one();
  }
  if (on_stop_) on_stop_(w);
}

void ThreadPool::run_on_all(const std::function<void(int)>& body) {
  start([](void* ctx, int w) { (*static_cast<const std::function<void(int)>*>(ctx))(w); },
        const_cast<std::function<void(int)>*>(&body));
  // The caller sleeps at once: it is not one of the pool's threads, and with as many pool threads
  // as cores its spinning would take a core from one of them for the whole spin.
  finish(0);
}

}  // namespace concbench
