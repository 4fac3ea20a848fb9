// Tests for concbench/counters.hpp. They rely on the probe, not on assumptions about the
// machine: a counter the probe calls unavailable must read as std::nullopt, and one it calls
// available must actually move when the thread does the corresponding thing.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "concbench/counters.hpp"

#if defined(__linux__)
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

// The probe's reason for an unavailable counter; fails the test when there is none, so that a
// test skipping for a missing counter can never skip silently.
std::string reason_for(Counter c) {
  const CounterProbe& p = counter_probe();
  const auto it = p.unavailable.find(std::string(counter_name(c)));
  EXPECT_NE(it, p.unavailable.end()) << counter_name(c) << " is unavailable without a reason";
  if (it == p.unavailable.end()) return "(no reason recorded)";
  EXPECT_FALSE(it->second.empty()) << counter_name(c);
  return std::string(counter_name(c)) + " unavailable: " + it->second;
}

#define SKIP_UNLESS_AVAILABLE(c) \
  if (!counter_probe().available(c)) GTEST_SKIP() << reason_for(c)

// Runs `body` on a fresh thread so that the measurement is not disturbed by whatever the test
// runner's main thread did before.
template <typename F>
void on_fresh_thread(F body) {
  std::thread t(body);
  t.join();
}

// Burns `d` of the calling thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), not of wall time:
// however busy the machine is, the counters under test then have at least `d` to count.
uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void spin_for(std::chrono::microseconds d) {
  const uint64_t end = thread_cpu_ns() + static_cast<uint64_t>(d.count()) * 1000;
  volatile uint64_t sink = 0;
  while (thread_cpu_ns() < end) {
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
    GTEST_SKIP() << reason_for(Counter::context_switches) << "; "
                 << reason_for(Counter::voluntary_context_switches);
  }
  if (!p.available(Counter::context_switches)) {
    EXPECT_FALSE(reason_for(Counter::context_switches).empty());
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
    EXPECT_GE(*d.get(Counter::voluntary_context_switches), 10u);
  }
}

TEST(ThreadCounters, UnavailableCounterReadsAsNullopt) {
  const CounterProbe& p = counter_probe();
  std::optional<Counter> missing;
  for (int i = 0; i < kCounterCount && !missing; ++i) {
    if (!p.available(counter_at(i))) missing = counter_at(i);
  }
  if (!missing) GTEST_SKIP() << "every counter is available on this machine; nothing to check";
  EXPECT_FALSE(reason_for(*missing).empty());
  ThreadCounters tc;
  const CounterValues a = tc.read();
  spin_for(std::chrono::microseconds(200));
  const CounterValues b = tc.read();
  EXPECT_FALSE(a.has(*missing)) << counter_name(*missing);
  EXPECT_EQ(a.get(*missing), std::nullopt) << counter_name(*missing) << " must not read as 0";
  EXPECT_EQ(b.since(a).get(*missing), std::nullopt) << counter_name(*missing);
}

TEST(ThreadCounters, BusyLoopTaskClock) {
  SKIP_UNLESS_AVAILABLE(Counter::task_clock_ns);
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
  // The spin burned 5 ms of the thread's own CPU time, which the task clock must see (the two
  // clocks are the same scheduler accounting; slack for their granularity).
  EXPECT_GE(task_ns, 4'500'000u) << "wall " << wall_ns;
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
  SKIP_UNLESS_AVAILABLE(Counter::page_faults);
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
  // Not exactly 64: transparent huge pages or fault-around may satisfy several pages at once;
  // but an anonymous private mapping is faulted in at least once per 2 MiB, and at most once
  // per page (plus the thread's own few).
  EXPECT_GT(*d.get(Counter::page_faults), 0u);
  EXPECT_LE(*d.get(Counter::page_faults), 64u + 16u);
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
  // A sleeping sibling thread must not show up in this thread's voluntary switches, while the
  // sibling's own counters do see its sleeps (so a counter stuck at 0 cannot pass).
  SKIP_UNLESS_AVAILABLE(Counter::voluntary_context_switches);
  CounterValues d, sibling;
  on_fresh_thread([&] {
    ThreadCounterScope scope;
    std::thread sleeper([&] {
      ThreadCounterScope own;
      for (int i = 0; i < 20; ++i) std::this_thread::sleep_for(std::chrono::microseconds(1000));
      sibling = own.stop();
    });
    sleeper.join();  // this thread blocks once or twice here, not 20 times
    d = scope.stop();
  });
  ASSERT_TRUE(d.has(Counter::voluntary_context_switches));
  ASSERT_TRUE(sibling.has(Counter::voluntary_context_switches));
  EXPECT_GE(*sibling.get(Counter::voluntary_context_switches), 20u);
  EXPECT_LT(*d.get(Counter::voluntary_context_switches), 10u);
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

TEST(CounterValues, WithoutTriplesSinceCarriesMultiplexedAndNeverWraps) {
  // Values without raw triples (sums over threads): the old rule, clamped and inherited.
  CounterValues early, late;
  early.set(Counter::cycles, 1000);
  late.set(Counter::cycles, 990);  // a scaled estimate that shrank
  early.multiplexed = true;
  const CounterValues d = late.since(early);
  EXPECT_TRUE(d.multiplexed);
  EXPECT_EQ(d.get(Counter::cycles), 0u);
}

// ---- multiplexed scaling, with synthetic (value, enabled, running) reads: no PMU needed ----

TEST(ScaleDelta, NoMultiplexingIsExact) {
  const ScaledDelta d = scale_delta({100, 1000, 1000}, {350, 3000, 3000});
  EXPECT_EQ(d.status, ScaledDelta::Status::ok);
  EXPECT_EQ(d.value, 250u);
  EXPECT_FALSE(d.multiplexed);
}

TEST(ScaleDelta, RunningBelowEnabledScalesTheIntervalItself) {
  // Over the interval the event ran 500 of 2000 ns enabled and counted 100: ~400.
  const ScaledDelta d = scale_delta({1000, 1000, 1000}, {1100, 3000, 1500});
  EXPECT_EQ(d.status, ScaledDelta::Status::ok);
  EXPECT_EQ(d.value, 400u);
  EXPECT_TRUE(d.multiplexed);
  // The old way, the difference of the scaled cumulative estimates, says 1100*3000/1500 - 1000
  // = 1200: three times too much, because the first 1000 ns ran unmultiplexed.
  EXPECT_NE(d.value, 1100u * 3000u / 1500u - 1000u);
}

TEST(ScaleDelta, NeverRunningIsNotCountedNeverZero) {
  const ScaledDelta d = scale_delta({500, 1000, 800}, {500, 5000, 800});
  EXPECT_EQ(d.status, ScaledDelta::Status::not_counted);
  EXPECT_FALSE(scale_delta_reason(d.status).empty());
  // Not enabled at all (the thread did not run): an exact 0, not "not counted".
  const ScaledDelta idle = scale_delta({500, 1000, 800}, {500, 1000, 800});
  EXPECT_EQ(idle.status, ScaledDelta::Status::ok);
  EXPECT_EQ(idle.value, 0u);
  EXPECT_FALSE(idle.multiplexed);
}

TEST(ScaleDelta, InconsistentReadsAreRejected) {
  EXPECT_EQ(scale_delta({10, 10, 10}, {9, 20, 20}).status, ScaledDelta::Status::inconsistent);
  EXPECT_EQ(scale_delta({10, 10, 10}, {20, 20, 30}).status, ScaledDelta::Status::inconsistent);
  EXPECT_EQ(scale_delta({10, 10, 10}, {20, 5, 5}).status, ScaledDelta::Status::inconsistent);
  EXPECT_FALSE(scale_delta_reason(ScaledDelta::Status::inconsistent).empty());
}

TEST(ScaleDelta, HugeValuesDoNotOverflow) {
  // 2^62 * 2^62 / 2^61 needs 124 bits on the way.
  const uint64_t big = uint64_t{1} << 62;
  const ScaledDelta d = scale_delta({0, 0, 0}, {big, big, big / 2});
  EXPECT_EQ(d.status, ScaledDelta::Status::ok);
  EXPECT_EQ(d.value, uint64_t{1} << 63);
  // A quotient beyond 64 bits saturates rather than wraps.
  EXPECT_EQ(scale_delta({0, 0, 0}, {UINT64_MAX, UINT64_MAX, 1}).value, UINT64_MAX);
}

TEST(ScaleDelta, MonotoneCountsGiveNonNegativeDeltasThatAddUp) {
  // A sequence of reads whose running/enabled ratio swings: every interval's delta is an honest
  // non-negative estimate, and unmultiplexed stretches add up exactly, where the old difference
  // of scaled totals went below zero (clamped to 0) and came out wrong.
  // 0->1 multiplexed (ran 100 of 1000 ns), 1->2 exact, 2->3 never ran, 3->4 and 4->5 exact.
  // The scaled total falls from 2000 to 545 at read 2: the first interval's rate was not the
  // second's.
  const RawCount reads[] = {{0, 0, 0},         {200, 1000, 100},   {300, 2000, 1100},
                            {300, 3000, 1100}, {1300, 4000, 2100}, {2300, 5000, 3100}};
  uint64_t old_way_zeroes = 0;
  for (size_t i = 1; i < std::size(reads); ++i) {
    CounterValues a, b;
    a.set_raw(Counter::cycles, reads[i - 1]);
    b.set_raw(Counter::cycles, reads[i]);
    const CounterValues d = b.since(a);
    const ScaledDelta sd = scale_delta(reads[i - 1], reads[i]);
    SCOPED_TRACE(i);
    if (sd.status == ScaledDelta::Status::not_counted) {
      EXPECT_FALSE(d.has(Counter::cycles));
      EXPECT_TRUE(d.not_counted(Counter::cycles));
      EXPECT_FALSE(d.unavailable_reason(Counter::cycles).empty());
    } else {
      ASSERT_EQ(sd.status, ScaledDelta::Status::ok);
      EXPECT_EQ(d.get(Counter::cycles), sd.value);
      EXPECT_EQ(d.multiplexed, sd.multiplexed) << "multiplexed must describe this interval only";
    }
    const uint64_t sa = a.get(Counter::cycles).value_or(0), sb = b.get(Counter::cycles).value_or(0);
    if (sb < sa) ++old_way_zeroes;
  }
  EXPECT_GT(old_way_zeroes, 0u) << "the sequence must exercise a shrinking scaled total";
  // Reads 1 -> 2 and 4 -> 5 ran unmultiplexed: exact deltas, multiplexed false; 0 -> 1 is ~2000.
  CounterValues r0, r1, r2;
  r0.set_raw(Counter::cycles, reads[0]);
  r1.set_raw(Counter::cycles, reads[1]);
  r2.set_raw(Counter::cycles, reads[2]);
  EXPECT_EQ(r1.since(r0).get(Counter::cycles), 2000u);
  EXPECT_TRUE(r1.since(r0).multiplexed);
  EXPECT_EQ(r2.since(r1).get(Counter::cycles), 100u);
  EXPECT_FALSE(r2.since(r1).multiplexed);
  CounterValues r3, r4, r5;
  r3.set_raw(Counter::cycles, reads[3]);
  r4.set_raw(Counter::cycles, reads[4]);
  r5.set_raw(Counter::cycles, reads[5]);
  EXPECT_EQ(r5.since(r4).get(Counter::cycles), 1000u);
  EXPECT_FALSE(r5.since(r4).multiplexed);
  // Cumulatively r5 is multiplexed (its total is an estimate); the interval is not.
  EXPECT_TRUE(r5.multiplexed);
}

TEST(CounterValues, RawReadsRoundTripAndNeverRanIsUnavailable) {
  CounterValues v;
  v.set_raw(Counter::instructions, {50, 100, 0});
  EXPECT_FALSE(v.has(Counter::instructions));  // no estimate of a total that never ran
  ASSERT_TRUE(v.raw(Counter::instructions).has_value());
  EXPECT_EQ(v.raw(Counter::instructions)->enabled, 100u);
  v.set_raw(Counter::cycles, {100, 200, 100});
  EXPECT_EQ(v.get(Counter::cycles), 200u);  // the cumulative estimate
  EXPECT_EQ(v.raw(Counter::cycles)->value, 100u);
  EXPECT_TRUE(v.multiplexed);
  // An interval in which the counter was counted after all has a value.
  CounterValues later;
  later.set_raw(Counter::instructions, {150, 300, 100});
  EXPECT_EQ(later.since(v).get(Counter::instructions), 200u);
  // Sums keep the not-counted mark and drop the triples.
  CounterValues a = CounterValues::zero_all(), part;
  part.set_not_counted(Counter::cache_misses);
  a.accumulate(part);
  EXPECT_TRUE(a.not_counted(Counter::cache_misses));
  EXPECT_FALSE(a.has(Counter::cache_misses));
  EXPECT_FALSE(a.raw(Counter::cycles).has_value());
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
  // The thread's own count of its switches, from the scheduler, just before it exits. Not 30:
  // on a VM a sleep whose timer fires while the host has stolen the vCPU returns without
  // switching (29 of 30 seen under load), so the process count is checked against this.
  uint64_t own_switches = 0;
  std::thread t([&own_switches] {
    for (int i = 0; i < 30; ++i) std::this_thread::sleep_for(std::chrono::microseconds(300));
    spin_for(std::chrono::milliseconds(20));  // CPU time: a busy machine still gives it 20 ms
    rusage ru{};
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
      own_switches = static_cast<uint64_t>(ru.ru_nvcsw) + static_cast<uint64_t>(ru.ru_nivcsw);
    }
  });
  t.join();  // exited: its counts must have been folded in, not lost
  ASSERT_GE(own_switches, 10u) << "a thread that slept 30 times switched fewer than 10 times";
  const CounterValues d = pc.read().since(start);
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    if (!probe.available(c)) {
      EXPECT_EQ(d.get(c), std::nullopt) << counter_name(c);
    }
  }
  if (probe.available(Counter::context_switches)) {
    // At least what the started thread did (the joining thread adds its own wait).
    EXPECT_GE(d.get(Counter::context_switches).value_or(0), own_switches);
  } else {
    EXPECT_FALSE(reason_for(Counter::context_switches).empty());
  }
  if (probe.available(Counter::task_clock_ns)) {
    EXPECT_GE(d.get(Counter::task_clock_ns).value_or(0), 10'000'000u);  // the 20 ms spin
  } else {
    EXPECT_FALSE(reason_for(Counter::task_clock_ns).empty());
  }
}

// InheritedCounters: threads created after opening, joined, then counted -- how a model whose
// threads start per batch counts them without opening anything inside its timed region.
TEST(InheritedCounters, CountsThreadsCreatedAfterOpening) {
  SKIP_UNLESS_AVAILABLE(Counter::task_clock_ns);
  CounterValues d, parent_only;
  std::map<std::string, std::string> reasons;
  on_fresh_thread([&] {
    InheritedCounters ic;
    ThreadCounters own;  // this thread alone, for comparison
    const CounterValues a = ic.read(), oa = own.read();
    std::thread t1([] { spin_for(std::chrono::milliseconds(20)); });
    std::thread t2([] {
      std::thread grandchild([] { spin_for(std::chrono::milliseconds(10)); });
      grandchild.join();
    });
    t1.join();
    t2.join();
    d = ic.read().since(a);
    parent_only = own.read().since(oa);
    reasons = ic.unavailable();
  });
  ASSERT_TRUE(d.has(Counter::task_clock_ns))
      << (reasons.count("task_clock_ns") ? reasons.at("task_clock_ns") : std::string("no reason"));
  // The children's 30 ms of CPU time, which the opening thread (asleep in join) did not spend.
  EXPECT_GE(*d.get(Counter::task_clock_ns), 28'000'000u);
  ASSERT_TRUE(parent_only.has(Counter::task_clock_ns));
  EXPECT_LT(*parent_only.get(Counter::task_clock_ns), 5'000'000u);
  // getrusage cannot follow the children: unavailable, with the reason.
  EXPECT_FALSE(d.has(Counter::voluntary_context_switches));
  ASSERT_TRUE(reasons.count("voluntary_context_switches"));
  EXPECT_NE(reasons.at("voluntary_context_switches").find("getrusage"), std::string::npos);
  // Every counter it lacks has a reason; every counter it has is one the probe allows.
  for (int i = 0; i < kCounterCount; ++i) {
    const Counter c = counter_at(i);
    if (d.has(c)) {
      EXPECT_TRUE(counter_probe().available(c)) << counter_name(c);
    } else if (!d.not_counted(c)) {
      EXPECT_TRUE(reasons.count(std::string(counter_name(c)))) << counter_name(c);
    }
  }
}

TEST(InheritedCounters, DestructorClosesEveryDescriptor) {
  (void)counter_probe();
  const int before = open_fd_count();
  for (int i = 0; i < 100; ++i) {
    InheritedCounters ic;
    (void)ic.read();
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(ProcessCounters, CountsAChildProcessStartedAfterConstruction) {
  SKIP_UNLESS_AVAILABLE(Counter::task_clock_ns);
  ProcessCounters pc;
  const CounterValues start = pc.read();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    spin_for(std::chrono::milliseconds(30));  // 30 ms of the child's own CPU time
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const CounterValues d = pc.read().since(start);
  EXPECT_GE(d.get(Counter::task_clock_ns).value_or(0), 28'000'000u);
}
#endif

// The scheduler's view: where tracepoints are permitted, hand-offs between two threads show up
// as wake-ups with their latencies; where not, the reason is given, never zeros.
TEST(SchedTrace, HandOffsAreWakeupsOrTheReasonIsGiven) {
  SchedTrace st;
  if (!st.available()) {
    EXPECT_FALSE(st.unavailable().empty());
    const auto s = st.summarize({static_cast<int>(getpid())});
    EXPECT_EQ(s["available"], false);
    EXPECT_EQ(s["reason"], st.unavailable());
    GTEST_SKIP() << st.unavailable();
  }
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;
  constexpr int kRounds = 200;
  st.start();
  std::thread other([&] {
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return turn % 2 == 1; });
      ++turn;
      cv.notify_all();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    std::unique_lock l(mu);
    cv.wait(l, [&] { return turn % 2 == 0; });
    ++turn;
    cv.notify_all();
  }
  other.join();
  st.stop();
  const auto s = st.summarize({static_cast<int>(getpid())});
  EXPECT_EQ(s["available"], true);
  EXPECT_GE(s["threads"].get<int>(), 2);
  // Each hand-off wakes the other thread (some find it still running and need no wake-up).
  EXPECT_GE(s["wakeups"].get<int>(), kRounds / 2) << s.dump();
  EXPECT_GE(s["wakeup_latency_ns"]["n"].get<int>(), kRounds / 2) << s.dump();
  EXPECT_GT(s["wakeup_latency_ns"]["p50"].get<uint64_t>(), 0u) << s.dump();
}

}  // namespace
}  // namespace concbench
