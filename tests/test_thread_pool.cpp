#include <gtest/gtest.h>

#include <atomic>
#include <set>
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

}  // namespace
}  // namespace concbench
