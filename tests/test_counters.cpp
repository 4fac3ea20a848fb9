// Tests for concbench/counters.hpp. They rely on the probe, not on assumptions about the
// machine: a counter the probe calls unavailable must read as std::nullopt, and one it calls
// available must actually move when the thread does the corresponding thing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "concbench/counters.hpp"

#if defined(__linux__)
#include <dirent.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace concbench {
namespace {

Counter counter_at(int i) {
  return static_cast<Counter>(i);
}

std::string probe_summary(const CounterProbe& p) {
  std::string s = "perf_event_paranoid=" + std::to_string(p.perf_event_paranoid) + "\n";
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    const std::string name(counter_name(c));
    s += "  " + name + ": ";
    if (p.available(c)) {
      s += "available\n";
    } else {
      auto it = p.unavailable.find(name);
      s += "unavailable (" + (it == p.unavailable.end() ? std::string("?") : it->second) + ")\n";
    }
  }
  return s;
}

// Runs `body` on a fresh thread so that the measurement is not disturbed by whatever the test
// runner's main thread did before.
template <typename F>
void on_fresh_thread(F body) {
  std::thread t(body);
  t.join();
}

void spin_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  volatile uint64_t sink = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 1000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
}

TEST(CounterNames, AreDistinctAndKnown) {
  EXPECT_EQ(counter_name(Counter::context_switches), "context_switches");
  EXPECT_EQ(counter_name(Counter::task_clock_ns), "task_clock_ns");
  EXPECT_EQ(counter_name(Counter::llc_load_misses), "llc_load_misses");
  for (int i = 0; i < kCounterCount; ++i) {
    for (int j = i + 1; j < kCounterCount; ++j) {
      EXPECT_NE(counter_name(counter_at(i)), counter_name(counter_at(j)));
    }
  }
  EXPECT_FALSE(is_hardware_counter(Counter::task_clock_ns));
  EXPECT_FALSE(is_hardware_counter(Counter::voluntary_context_switches));
  EXPECT_TRUE(is_hardware_counter(Counter::cycles));
  EXPECT_TRUE(is_hardware_counter(Counter::llc_load_misses));
}

TEST(CounterProbe, EveryCounterIsAvailableXorHasAReason) {
  const CounterProbe& p = counter_probe();
  std::cout << "[ probe    ] " << probe_summary(p);
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    const std::string name(counter_name(c));
    const auto it = p.unavailable.find(name);
    if (p.available(c)) {
      EXPECT_EQ(it, p.unavailable.end()) << name << " is available but also has a reason";
    } else {
      ASSERT_NE(it, p.unavailable.end()) << name << " is unavailable without a reason";
      EXPECT_FALSE(it->second.empty()) << name << " has an empty reason";
    }
  }
  // No reasons for names that are not counters.
  EXPECT_LE(p.unavailable.size(), static_cast<size_t>(kCounterCount));
  // Bits above the last counter are never set.
  EXPECT_EQ(p.available_mask >> kCounterCount, 0u);
  // Same object every time: computed once.
  EXPECT_EQ(&p, &counter_probe());
}

TEST(ThreadCounters, ReadsOnlyWhatTheProbeAllows) {
  const CounterProbe& p = counter_probe();
  on_fresh_thread([&] {
    ThreadCounters tc;
    const CounterValues v = tc.read();
    for (int i = 0; i < kCounterCount; ++i) {
      const Counter c = counter_at(i);
      if (!p.available(c)) {
        EXPECT_FALSE(v.has(c)) << counter_name(c) << " read although the probe rejected it";
      }
    }
  });
}

#if defined(__linux__)
TEST(ThreadCounters, RusageContextSwitchesAvailableOnLinux) {
  // getrusage(RUSAGE_THREAD) needs no permission and no PMU.
  EXPECT_TRUE(counter_probe().available(Counter::voluntary_context_switches));
  EXPECT_TRUE(counter_probe().available(Counter::involuntary_context_switches));
}
#endif

TEST(ThreadCounters, SleepingThreadContextSwitches) {
  const CounterProbe& p = counter_probe();
  if (!p.available(Counter::context_switches) &&
      !p.available(Counter::voluntary_context_switches)) {
    GTEST_SKIP() << "no context-switch counter on this machine:\n" << probe_summary(p);
  }
  CounterValues d;
  on_fresh_thread([&] {
    ThreadCounterScope scope;
    // Each sleep blocks the thread, i.e. at least one voluntary switch per iteration.
    for (int i = 0; i < 20; ++i) std::this_thread::sleep_for(std::chrono::microseconds(1000));
    d = scope.stop();
  });
  if (p.available(Counter::context_switches)) {
    ASSERT_TRUE(d.get(Counter::context_switches).has_value());
    EXPECT_GT(*d.get(Counter::context_switches), 0u);
    // Every sleep is one switch at least; allow a few to be lost to coarse timer slack merging.
    EXPECT_GE(*d.get(Counter::context_switches), 10u);
  }
  if (p.available(Counter::voluntary_context_switches)) {
    ASSERT_TRUE(d.get(Counter::voluntary_context_switches).has_value());
    EXPECT_GT(*d.get(Counter::voluntary_context_switches), 0u);
  }
}

TEST(ThreadCounters, UnavailableCounterReadsAsNullopt) {
  const CounterProbe& p = counter_probe();
  std::optional<Counter> missing;
  for (int i = 0; i < kCounterCount && !missing; ++i) {
    if (!p.available(counter_at(i))) missing = counter_at(i);
  }
  if (!missing) GTEST_SKIP() << "every counter is available on this machine; nothing to check";
  ThreadCounters tc;
  const CounterValues a = tc.read();
  spin_for(std::chrono::microseconds(200));
  const CounterValues b = tc.read();
  EXPECT_FALSE(a.has(*missing)) << counter_name(*missing);
  EXPECT_EQ(a.get(*missing), std::nullopt) << counter_name(*missing) << " must not read as 0";
  EXPECT_EQ(b.since(a).get(*missing), std::nullopt) << counter_name(*missing);
}

TEST(ThreadCounters, BusyLoopTaskClock) {
  if (!counter_probe().available(Counter::task_clock_ns)) {
    GTEST_SKIP() << "task_clock_ns unavailable: "
                 << counter_probe().unavailable.at(
                        std::string(counter_name(Counter::task_clock_ns)));
  }
  uint64_t task_ns = 0;
  int64_t wall_ns = 0;
  on_fresh_thread([&] {
    ThreadCounterScope scope;
    const auto t0 = std::chrono::steady_clock::now();
    spin_for(std::chrono::milliseconds(5));
    const auto t1 = std::chrono::steady_clock::now();
    const CounterValues d = scope.stop();
    ASSERT_TRUE(d.get(Counter::task_clock_ns).has_value());
    task_ns = *d.get(Counter::task_clock_ns);
    wall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  });
  EXPECT_GT(task_ns, 0u);
  // One thread cannot be on a CPU longer than the wall clock (slack for the reads themselves).
  EXPECT_LE(task_ns, static_cast<uint64_t>(wall_ns) + 2'000'000u);
}

TEST(ThreadCounters, CumulativeReadsDoNotDecrease) {
  ThreadCounters tc;
  const CounterValues a = tc.read();
  spin_for(std::chrono::microseconds(500));
  std::this_thread::sleep_for(std::chrono::microseconds(200));
  const CounterValues b = tc.read();
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    EXPECT_EQ(a.has(c), b.has(c)) << counter_name(c);
    // Scaled (multiplexed) hardware counts are estimates and may legitimately wobble.
    if (a.has(c) && b.has(c) && !(is_hardware_counter(c) && (a.multiplexed || b.multiplexed))) {
      EXPECT_GE(*b.get(c), *a.get(c)) << counter_name(c);
    }
  }
}

#if defined(__linux__)
TEST(ThreadCounters, PageFaultsCountFreshPages) {
  if (!counter_probe().available(Counter::page_faults)) GTEST_SKIP() << "page_faults unavailable";
  constexpr size_t kBytes = 64 * 4096;
  CounterValues d;
  on_fresh_thread([&] {
    void* mem = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    ThreadCounterScope scope;
    volatile char* p = static_cast<char*>(mem);
    for (size_t off = 0; off < kBytes; off += 4096) p[off] = 1;
    d = scope.stop();
    munmap(mem, kBytes);
  });
  ASSERT_TRUE(d.get(Counter::page_faults).has_value());
  // >0 rather than 64: transparent huge pages or fault-around may satisfy several pages at once.
  EXPECT_GT(*d.get(Counter::page_faults), 0u);
}

int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

TEST(ThreadCounters, DestructorClosesEveryDescriptor) {
  (void)counter_probe();  // the probe's own descriptors are closed before it returns
  const int before = open_fd_count();
  for (int i = 0; i < 200; ++i) {
    ThreadCounters tc;
    (void)tc.read();
  }
  EXPECT_EQ(open_fd_count(), before);
}
#endif

TEST(ThreadCounters, CountsArePerThread) {
  // A sleeping sibling thread must not show up in this thread's voluntary switches.
  if (!counter_probe().available(Counter::voluntary_context_switches)) {
    GTEST_SKIP() << "voluntary_context_switches unavailable";
  }
  CounterValues d;
  on_fresh_thread([&] {
    ThreadCounterScope scope;
    std::thread sleeper([] {
      for (int i = 0; i < 20; ++i) std::this_thread::sleep_for(std::chrono::microseconds(1000));
    });
    sleeper.join();  // this thread blocks once or twice here, not 20 times
    d = scope.stop();
  });
  ASSERT_TRUE(d.has(Counter::voluntary_context_switches));
  EXPECT_LT(*d.get(Counter::voluntary_context_switches), 20u);
}

// ---- CounterValues arithmetic ----

TEST(CounterValues, DefaultIsAllUnavailable) {
  const CounterValues v;
  for (int i = 0; i < kCounterCount; ++i) {
    EXPECT_FALSE(v.has(counter_at(i)));
    EXPECT_EQ(v.get(counter_at(i)), std::nullopt);
  }
  EXPECT_FALSE(v.multiplexed);
}

TEST(CounterValues, SetGetAndOutOfRange) {
  CounterValues v;
  v.set(Counter::cycles, 0);
  EXPECT_TRUE(v.has(Counter::cycles));
  EXPECT_EQ(v.get(Counter::cycles), std::optional<uint64_t>(0));  // available zero != nullopt
  v.set(Counter::kCount, 7);  // ignored, must not corrupt anything
  EXPECT_EQ(v.get(Counter::kCount), std::nullopt);
  EXPECT_EQ(v.get(Counter::cycles), std::optional<uint64_t>(0));
}

TEST(CounterValues, ZeroAllIsIdentityForAccumulate) {
  CounterValues a;
  a.set(Counter::cycles, 100);
  a.set(Counter::page_faults, 3);
  CounterValues sum = CounterValues::zero_all();
  for (int i = 0; i < kCounterCount; ++i) EXPECT_EQ(sum.get(counter_at(i)), 0u);
  sum.accumulate(a);
  EXPECT_EQ(sum.get(Counter::cycles), 100u);
  EXPECT_EQ(sum.get(Counter::page_faults), 3u);
  // a did not have these, so neither does the sum.
  EXPECT_EQ(sum.get(Counter::instructions), std::nullopt);
  EXPECT_EQ(sum.get(Counter::context_switches), std::nullopt);
}

TEST(CounterValues, AccumulateKeepsOnlyCountersBothSidesHave) {
  CounterValues a, b;
  a.set(Counter::cycles, 10);
  a.set(Counter::instructions, 20);
  b.set(Counter::cycles, 5);
  b.set(Counter::task_clock_ns, 7);
  a.accumulate(b);
  EXPECT_EQ(a.get(Counter::cycles), 15u);
  EXPECT_EQ(a.get(Counter::instructions), std::nullopt);   // b could not count it
  EXPECT_EQ(a.get(Counter::task_clock_ns), std::nullopt);  // a could not count it
  // Once unavailable, it stays unavailable even if a later addend has it.
  CounterValues c;
  c.set(Counter::instructions, 1);
  c.set(Counter::cycles, 1);
  a.accumulate(c);
  EXPECT_EQ(a.get(Counter::instructions), std::nullopt);
  EXPECT_EQ(a.get(Counter::cycles), 16u);
}

TEST(CounterValues, AccumulateOrsMultiplexed) {
  CounterValues a = CounterValues::zero_all(), b = CounterValues::zero_all();
  b.multiplexed = true;
  a.accumulate(CounterValues::zero_all());
  EXPECT_FALSE(a.multiplexed);
  a.accumulate(b);
  EXPECT_TRUE(a.multiplexed);
  a.accumulate(CounterValues::zero_all());
  EXPECT_TRUE(a.multiplexed);
}

TEST(CounterValues, SinceIsElementWiseWhereBothAvailable) {
  CounterValues early, late;
  early.set(Counter::cycles, 100);
  early.set(Counter::instructions, 50);
  early.set(Counter::page_faults, 1);
  late.set(Counter::cycles, 350);
  late.set(Counter::instructions, 80);
  late.set(Counter::task_clock_ns, 999);
  const CounterValues d = late.since(early);
  EXPECT_EQ(d.get(Counter::cycles), 250u);
  EXPECT_EQ(d.get(Counter::instructions), 30u);
  EXPECT_EQ(d.get(Counter::page_faults), std::nullopt);    // only early had it
  EXPECT_EQ(d.get(Counter::task_clock_ns), std::nullopt);  // only late had it
  EXPECT_EQ(d.get(Counter::cache_misses), std::nullopt);   // neither
  EXPECT_FALSE(d.multiplexed);
}

TEST(CounterValues, SinceCarriesMultiplexedAndNeverWraps) {
  CounterValues early, late;
  early.set(Counter::cycles, 1000);
  late.set(Counter::cycles, 990);  // a scaled estimate that shrank
  early.multiplexed = true;
  const CounterValues d = late.since(early);
  EXPECT_TRUE(d.multiplexed);
  EXPECT_EQ(d.get(Counter::cycles), 0u);
}

TEST(CounterValues, SinceThenAccumulateAcrossThreads) {
  // The model's usage: per-thread deltas summed into zero_all().
  CounterValues t1a, t1b, t2a, t2b;
  t1a.set(Counter::task_clock_ns, 10);
  t1b.set(Counter::task_clock_ns, 30);
  t1a.set(Counter::cycles, 1);
  t1b.set(Counter::cycles, 2);
  t2a.set(Counter::task_clock_ns, 5);
  t2b.set(Counter::task_clock_ns, 6);  // thread 2 could not count cycles
  CounterValues total = CounterValues::zero_all();
  total.accumulate(t1b.since(t1a));
  total.accumulate(t2b.since(t2a));
  EXPECT_EQ(total.get(Counter::task_clock_ns), 21u);
  EXPECT_EQ(total.get(Counter::cycles), std::nullopt);
}

#if defined(__linux__)
// ProcessCounters: the whole process, including threads started after construction (the
// Python module's counters() and cpython.* models depend on it).
TEST(ProcessCounters, CountsThreadsStartedAfterConstruction) {
  const CounterProbe& probe = counter_probe();
  ProcessCounters pc;
  EXPECT_GE(pc.threads_attached(), 1);
  const CounterValues start = pc.read();
  std::thread t([] {
    for (int i = 0; i < 30; ++i) std::this_thread::sleep_for(std::chrono::microseconds(300));
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    volatile uint64_t sink = 0;
    while (std::chrono::steady_clock::now() < end) sink = sink + 1;
  });
  t.join();  // exited: its counts must have been folded in, not lost
  const CounterValues d = pc.read().since(start);
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    if (!probe.available(c)) {
      EXPECT_EQ(d.get(c), std::nullopt) << counter_name(c);
    }
  }
  if (probe.available(Counter::context_switches)) {
    EXPECT_GE(d.get(Counter::context_switches).value_or(0), 30u);
  }
  if (probe.available(Counter::task_clock_ns)) {
    EXPECT_GE(d.get(Counter::task_clock_ns).value_or(0), 10'000'000u);  // the 20 ms spin
  }
}

TEST(ProcessCounters, CountsAChildProcessStartedAfterConstruction) {
  if (!counter_probe().available(Counter::task_clock_ns)) GTEST_SKIP() << "no task clock here";
  ProcessCounters pc;
  const CounterValues start = pc.read();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(30);
    volatile uint64_t sink = 0;
    while (std::chrono::steady_clock::now() < end) sink = sink + 1;
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const CounterValues d = pc.read().since(start);
  EXPECT_GE(d.get(Counter::task_clock_ns).value_or(0), 15'000'000u);
}
#endif

}  // namespace
}  // namespace concbench
