#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concbench/thread_pool.hpp"

namespace concbench {
namespace {

TEST(ThreadPool, OnStartRunsOnEveryWorkerBeforeTheConstructorReturns) {
  std::vector<std::thread::id> ids(3);
  std::atomic<int> stopped{0};
  {
    ThreadPool pool(
        3, [&](int w) { ids[static_cast<size_t>(w)] = std::this_thread::get_id(); },
        [&](int) { stopped.fetch_add(1); });
    std::set<std::thread::id> distinct(ids.begin(), ids.end());
    EXPECT_EQ(distinct.size(), 3u);
    EXPECT_EQ(distinct.count(std::this_thread::get_id()), 0u);
    EXPECT_EQ(stopped.load(), 0);
  }
  EXPECT_EQ(stopped.load(), 3);  // the destructor joined every worker after on_stop
}

TEST(ThreadPool, RunOnAllRunsEachWorkerOncePerCallOnItsOwnThread) {
  std::vector<std::thread::id> ids(4);
  ThreadPool pool(4, [&](int w) { ids[static_cast<size_t>(w)] = std::this_thread::get_id(); });
  for (int round = 0; round < 200; ++round) {
    std::vector<int> hits(4, 0);
    pool.run_on_all([&](int w) {
      EXPECT_EQ(std::this_thread::get_id(), ids[static_cast<size_t>(w)]);
      ++hits[static_cast<size_t>(w)];  // each worker writes only its own slot
    });
    // run_on_all returned, so every worker's write is visible here.
    for (int h : hits) ASSERT_EQ(h, 1) << "round " << round;
  }
}

TEST(ThreadPool, ForEachIndexCoversEveryIndexExactlyOnce) {
  ThreadPool pool(3, {}, {}, /*spin_iterations=*/0);  // sleeping workers: the futex path
  for (uint64_t n : {0u, 1u, 7u, 10000u}) {
    std::vector<std::atomic<int>> seen(n);
    pool.for_each_index(n, [&](uint64_t i) { seen[i].fetch_add(1); });
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  }
}

// Every index runs exactly once in every batch, over many batches, for pool sizes from none (the
// caller alone) up, with pool threads that spin between batches and with ones that sleep at once.
TEST(ThreadPool, ForEachIndexRunsEveryIndexOnceAcrossManyBatches) {
  for (int workers : {0, 1, 3}) {
    for (uint32_t spin : {0u, ThreadPool::kDefaultSpin}) {
      ThreadPool pool(workers, {}, {}, spin);
      for (int batch = 0; batch < 300; ++batch) {
        for (uint64_t n : {0u, 1u, 2u, 1000u}) {
          // Plain bytes: each index writes only its own, and for_each_index's return makes every
          // write visible here (ThreadSanitizer checks that claim).
          std::vector<uint8_t> seen(n, 0);
          pool.for_each_index(n, [&](uint64_t i) { ++seen[i]; });
          for (uint64_t i = 0; i < n; ++i)
            ASSERT_EQ(seen[i], 1) << "workers " << workers << " spin " << spin << " batch " << batch
                                  << " n " << n << " index " << i;
        }
      }
    }
  }
}

TEST(ThreadPool, ForEachIndexRunsOnTheCallerToo) {
  ThreadPool none(0);  // no pool thread: the caller runs everything
  const auto me = std::this_thread::get_id();
  int on_caller = 0;
  none.for_each_index(50, [&](uint64_t) { on_caller += std::this_thread::get_id() == me; });
  EXPECT_EQ(on_caller, 50);

  // With a pool thread, the caller still claims: its first index blocks until the pool thread has
  // run one, so both must have taken part.
  ThreadPool one(1);
  std::atomic<bool> pool_ran{false};
  std::atomic<int> caller_ran{0};
  one.for_each_index(100, [&](uint64_t) {
    if (std::this_thread::get_id() != me) {
      pool_ran.store(true);
      return;
    }
    caller_ran.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pool_ran.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  });
  EXPECT_TRUE(pool_ran.load());
  EXPECT_GE(caller_ran.load(), 1);
}

TEST(ThreadPool, ForEachIndexTakesCallablesOfEveryKind) {
  ThreadPool pool(2);
  std::atomic<uint64_t> sum{0};
  struct Adder {
    std::atomic<uint64_t>* sum;
    void operator()(uint64_t i) const { sum->fetch_add(i); }
  };
  const Adder adder{&sum};
  pool.for_each_index(10, adder);                                   // a const functor
  pool.for_each_index(10, Adder{&sum});                             // a temporary
  std::function<void(uint64_t)> f = [&](uint64_t i) { sum += i; };  // a std::function
  pool.for_each_index(10, f);
  EXPECT_EQ(sum.load(), 3u * 45u);
}

// An exception from a pool thread's index reaches the caller once the batch is over; indices not
// yet claimed are not run, none runs twice, and the pool stays usable.
TEST(ThreadPool, ForEachIndexRethrowsAPoolThreadsException) {
  ThreadPool pool(1, {}, {}, /*spin_iterations=*/0);
  const auto me = std::this_thread::get_id();
  for (int round = 0; round < 20; ++round) {
    std::vector<std::atomic<int>> ran(1000);
    std::atomic<bool> thrown{false};
    try {
      pool.for_each_index(1000, [&](uint64_t i) {
        ran[i].fetch_add(1);
        if (std::this_thread::get_id() != me) {
          thrown.store(true);
          throw std::runtime_error("from the pool thread");
        }
        // The caller holds its index until the pool thread has thrown, and each index a
        // millisecond more: the pool thread stops the batch only once its exception is caught
        // (an unwind of microseconds, more on a process's first throw), and without the pause
        // the caller could run the other 998 trivial indices first, as it did here one run in
        // six, which is a race of the test, not an unabandoned batch.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!thrown.load() && std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      });
      FAIL() << "no exception, round " << round;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "from the pool thread");
    }
    int total = 0;
    for (auto& r : ran) {
      ASSERT_LE(r.load(), 1);
      total += r.load();
    }
    EXPECT_LT(total, 1000) << "the rest of the batch was not abandoned";
    std::vector<std::atomic<int>> again(100);
    pool.for_each_index(100, [&](uint64_t i) { again[i].fetch_add(1); });
    for (auto& a : again) ASSERT_EQ(a.load(), 1);
  }
}

// An exception on the caller's own index waits for the pool threads: once for_each_index has
// thrown, no index is still running.
TEST(ThreadPool, ForEachIndexRethrowsTheCallersExceptionAfterThePoolFinishes) {
  ThreadPool pool(2);
  const auto me = std::this_thread::get_id();
  std::atomic<int> running{0};
  try {
    pool.for_each_index(100000, [&](uint64_t) {
      running.fetch_add(1);
      if (std::this_thread::get_id() == me) {
        running.fetch_sub(1);
        throw std::logic_error("from the caller");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      running.fetch_sub(1);
    });
    FAIL() << "no exception";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()), "from the caller");
  }
  EXPECT_EQ(running.load(), 0);
}

TEST(ThreadPool, RunOnAllRethrowsAndStaysUsable) {
  ThreadPool pool(3, {}, {}, /*spin_iterations=*/0);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run_on_all([&](int w) {
    ran.fetch_add(1);
    if (w == 1) throw std::runtime_error("worker 1");
  }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 3);  // the others still ran their part
  std::vector<int> hits(3, 0);
  pool.run_on_all([&](int w) { ++hits[static_cast<size_t>(w)]; });
  EXPECT_EQ(hits, std::vector<int>({1, 1, 1}));
}

// Pool threads that have gone to sleep between batches wake for the next one and for the
// destructor (the futex path of both hand-offs).
TEST(ThreadPool, SleepingPoolThreadsWakeForBatchesAndShutdown) {
  std::atomic<int> stopped{0};
  {
    ThreadPool pool(
        2, {}, [&](int) { stopped.fetch_add(1); }, /*spin_iterations=*/16);
    for (int round = 0; round < 5; ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // long past the spin
      std::atomic<int> ran{0};
      pool.run_on_all([&](int) { ran.fetch_add(1); });
      EXPECT_EQ(ran.load(), 2);
      std::vector<std::atomic<int>> seen(64);
      pool.for_each_index(64, [&](uint64_t i) { seen[i].fetch_add(1); });
      for (auto& s : seen) ASSERT_EQ(s.load(), 1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(stopped.load(), 2);
}

}  // namespace
}  // namespace concbench
