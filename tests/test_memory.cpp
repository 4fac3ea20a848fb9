// The memory component (memory_linux.cpp) and what the runner records with it: a process's USS,
// PSS and peak RSS, a worker process's too, and the threads a cell's process had.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "concbench/memory.hpp"
#include "concbench/runner.hpp"

namespace concbench {
namespace {

TEST(Memory, ThisProcessHasUssBelowPssBelowRss) {
  const ProcessMemory m = process_memory(0);
  ASSERT_TRUE(m.unavailable.empty()) << m.unavailable;
  ASSERT_TRUE(m.rss_bytes && m.pss_bytes && m.uss_bytes && m.peak_rss_bytes);
  EXPECT_GT(*m.uss_bytes, 0u);
  EXPECT_LE(*m.uss_bytes, *m.pss_bytes);
  EXPECT_LE(*m.pss_bytes, *m.rss_bytes);
  EXPECT_GE(*m.peak_rss_bytes, *m.rss_bytes / 2);  // the peak is at least near the current
}

TEST(Memory, PeakRssResetsAndSeesWhatWasTouched) {
  if (!reset_peak_rss()) GTEST_SKIP() << "the kernel refuses clear_refs 5";
  const uint64_t before = *process_memory(0).peak_rss_bytes;
  constexpr size_t kBytes = 64u << 20;
  {
    std::vector<char> big(kBytes);
    std::memset(big.data(), 1, big.size());  // touched: resident
    ASSERT_EQ(big[kBytes / 2], 1);
  }
  EXPECT_GE(*process_memory(0).peak_rss_bytes, before + kBytes / 2);
}

TEST(Memory, AnotherProcessAndOneThatHasGone) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  const ProcessMemory m = process_memory(child);
  EXPECT_TRUE(m.unavailable.empty()) << m.unavailable;
  EXPECT_TRUE(m.uss_bytes && m.pss_bytes);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  const ProcessMemory gone = process_memory(child);
  EXPECT_FALSE(gone.unavailable.empty());
  EXPECT_FALSE(gone.uss_bytes);
}

TEST(Memory, ThreadsAreCounted) {
  const auto before = os_thread_count();
  ASSERT_TRUE(before);
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) std::this_thread::yield();
  });
  const auto during = os_thread_count();
  stop = true;
  t.join();
  ASSERT_TRUE(during);
  EXPECT_EQ(*during, *before + 1);
}

RunConfig small(const std::string& model, int workers) {
  RunConfig c = suite_config("smoke");
  c.workloads = {"cpu.spin"};
  c.models = {model};
  c.workers = {workers};
  c.repetitions = 1;
  return c;
}

TEST(Memory, ProcessModelsRecordTheirWorkersUssAndPss) {
  const RunConfig c = small("process_pool", 2);
  const CellResult r = run_cell({"cpu.spin", "process_pool", 2}, c);
  ASSERT_EQ(r.status, "ok") << r.error;
  const auto& mem = r.repetitions.at(0).memory;
  ASSERT_TRUE(mem.is_object()) << mem.dump();
  EXPECT_EQ(mem["workers"], 2);
  ASSERT_TRUE(mem["uss_bytes"].is_number() && mem["pss_bytes"].is_number()) << mem.dump();
  EXPECT_GT(mem["uss_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(mem["uss_bytes"].get<uint64_t>(), mem["pss_bytes"].get<uint64_t>());
  EXPECT_GT(r.memory["workers_peak_rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(r.memory["peak_rss_bytes"].get<uint64_t>(),
            r.memory["process_peak_rss_bytes"].get<uint64_t>());
}

TEST(Memory, ThreadModelsRecordTheirThreadsAndNoWorkerMemory) {
  const RunConfig c = small("thread_pool", 2);
  const CellResult r = run_cell({"cpu.spin", "thread_pool", 2}, c);
  ASSERT_EQ(r.status, "ok") << r.error;
  EXPECT_TRUE(r.repetitions.at(0).memory.is_null());
  const auto& threads = r.memory["os_threads"];
  ASSERT_GT(threads["samples"].get<int>(), 0) << r.memory.dump();
  // This thread, the cell's and the pool's two workers (the caller takes part, so at least one).
  EXPECT_GE(threads["max"].get<int>(), 3) << r.memory.dump();
  EXPECT_GT(r.memory["peak_rss_bytes"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace concbench
