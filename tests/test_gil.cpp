// The emulated GIL's invariants (mutual exclusion, drop requests, forced switches, release around
// IO, the switch interval) and the gil_threads model's behaviour. Timings appear only as wide
// bounds on intervals the test itself sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/gil.hpp"
#include "concbench/interp_calibration.hpp"
#include "concbench/model.hpp"
#include "concbench/workload.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using namespace std::chrono_literals;

TEST(Gil, MutualExclusionUnderContention) {
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, 50us);
  std::atomic<int> inside{0};
  std::atomic<int> violations{0};
  uint64_t plain_counter = 0;  // protected by the GIL alone
  std::vector<std::thread> threads;
  std::vector<GilThread> recs(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      GilThread& t = recs[static_cast<size_t>(i)];
      gil.take(t);
      for (int k = 0; k < 20000; ++k) {
        if (inside.fetch_add(1) != 0) violations.fetch_add(1);
        ++plain_counter;
        inside.fetch_sub(1);
        gil.yield_if_requested(t);  // a checkpoint
      }
      gil.drop(t, false);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(plain_counter, 80000u);
  uint64_t switches = 0;
  for (const auto& r : recs) switches += r.switches;
  EXPECT_GE(switches, 4u);  // every thread acquired at least once
}

TEST(Gil, OneAcquisitionInSixtyFourMeasuresItsCpu) {
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, std::chrono::microseconds(5000));
  GilThread t;
  for (int i = 0; i < 1000; ++i) {
    gil.take(t);
    gil.drop(t);
  }
  EXPECT_EQ(t.samples, 1000 / kGilCpuSampleEvery);
  // An uncontended acquisition never leaves the CPU: what its samples measured is CPU time up
  // to the clocks' granularity, and never more than their wall time by more than that.
  EXPECT_GT(t.sampled_wait_ns, 0u);
  EXPECT_LE(t.sampled_wait_cpu_ns, t.sampled_wait_ns + t.samples * 1000);
  EXPECT_LT(gil_cpu_sample_cost_ns(), 100'000u);
}

TEST(Gil, ADropRequestMakesTheHolderHandOverAtItsNextCheckpoint) {
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, 2ms);
  GilThread a, b;
  gil.take(a);
  std::atomic<bool> b_has_it{false};
  std::thread tb([&] {
    gil.take(b);  // waits an interval, then asks A to drop
    b_has_it.store(true);
    gil.drop(b, false);
  });
  // A runs "bytecode" with checkpoints until it is made to hand over.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!b_has_it.load() && std::chrono::steady_clock::now() < deadline) {
    gil.yield_if_requested(a);
  }
  tb.join();
  EXPECT_TRUE(b_has_it.load());
  EXPECT_GE(b.drop_requests, 1u);
  EXPECT_EQ(b.switches, 1u);
  EXPECT_GE(gil.switch_number(), 2u);                 // A, then B (then perhaps A again)
  EXPECT_EQ(breaker.load() & kBreakDropRequest, 0u);  // the new holder cleared it
  gil.yield_if_requested(a);
  gil.drop(a, false);
}

TEST(Gil, AForcedSwitchHandsOverBeforeTheDropperCanRetake) {
  // Each thread drops only with a request pending and then tries to take the lock straight back.
  // FORCE_SWITCHING means the other thread always gets it first: acquisitions strictly alternate.
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, 1ms);
  GilThread a, b;
  std::mutex log_mu;
  std::vector<char> log;
  auto take_logged = [&](GilThread& t, char who) {
    gil.take(t);
    std::lock_guard l(log_mu);
    log.push_back(who);
  };
  auto wait_for_request = [&] {
    while ((breaker.load() & kBreakDropRequest) == 0) std::this_thread::yield();
  };
  gil.take(a);
  std::thread tb([&] {
    for (int i = 0; i < 20; ++i) {
      take_logged(b, 'B');
      if (i == 19) {
        gil.drop(b, false);
        break;
      }
      wait_for_request();
      gil.drop(b);
    }
  });
  for (int i = 0; i < 20; ++i) {
    wait_for_request();
    gil.drop(a);  // request pending: the FORCE_SWITCHING wait
    take_logged(a, 'A');
  }
  gil.drop(a, false);
  tb.join();
  ASSERT_EQ(log.size(), 40u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i], i % 2 ? 'A' : 'B') << i;
  // A drop that finds the other thread already holding the lock needs no forced wait, so the
  // count is at most one per drop; the alternation above is the invariant.
  EXPECT_LE(a.forced_switches, 20u);
  // The forced wait itself shows only with a core for each thread: with the other core busy,
  // the woken thread preempts the dropper inside its notify and has the lock (and has cleared
  // the request) before the dropper looks, every time.
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  EXPECT_GE(a.forced_switches + b.forced_switches, 1u);
}

TEST(Gil, TheSwitchIntervalIsHonoured) {
  for (auto interval : {5ms, 40ms}) {
    std::atomic<uint32_t> breaker{0};
    Gil gil(breaker, interval);
    GilThread a, b;
    gil.take(a);
    std::atomic<bool> done{false};
    std::thread tb([&] {
      gil.take(b);
      done.store(true);
      gil.drop(b, false);
    });
    // Checkpoints A passes with a drop request pending: it must hand over at the first.
    int checkpoints_with_request = 0;
    while (!done.load()) {
      if (breaker.load() & kBreakDropRequest) ++checkpoints_with_request;
      gil.yield_if_requested(a);
    }
    tb.join();
    ASSERT_EQ(b.wait_ns.size(), 1u);
    const auto waited = std::chrono::nanoseconds(b.wait_ns[0]);
    // Never before one full interval, and never a request before its interval ran out: however
    // late a busy machine wakes B, it can have asked at most once per interval it waited.
    EXPECT_GE(waited, interval);
    EXPECT_GE(b.drop_requests, 1u);
    EXPECT_GE(waited, interval * b.drop_requests);
    // (0 when the request landed between this loop's look and the checkpoint's own.)
    EXPECT_LE(checkpoints_with_request, 1);
    gil.yield_if_requested(a);
    gil.drop(a, false);
  }
}

TEST(Gil, CancellationEndsAForcedSwitchWaitNobodyWillAnswer) {
  std::atomic<uint32_t> breaker{kBreakDropRequest};
  Gil gil(breaker, 1ms);
  GilThread a;
  gil.take(a);  // clears the request
  breaker.fetch_or(kBreakDropRequest | kBreakCancel);
  const auto t0 = std::chrono::steady_clock::now();
  gil.drop(a);  // nobody waits to take it; cancellation must end the wait
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

// ---- the model ----

struct Cell {
  BatchResult result;
  TaskSet tasks;
};

Cell run_model(const char* model, int workers, const char* workload,
               std::map<std::string, std::string> wparams,
               std::map<std::string, std::string> mparams = {}) {
  const Workload& w = *find_workload(workload);
  Cell c;
  c.tasks = w.make_tasks(Params::resolve(w.params(), wparams, workload), 5);
  auto m = find_model(model)->create();
  ModelConfig cfg;
  cfg.workers = workers;
  cfg.params = Params::resolve(find_model(model)->params, mparams, model);
  m->setup(cfg);
  c.result = m->run(Batch{&c.tasks.tasks, 1});
  m->teardown();
  return c;
}

void expect_verified(const Cell& c) {
  for (size_t k = 0; k < c.result.done.size(); ++k) {
    EXPECT_TRUE(c.result.done[k]) << k;
    EXPECT_EQ(c.result.checksums[k], testing_helpers::expected_item(c.tasks, k)) << k;
  }
}

uint64_t lost_updates(const Cell& c, uint64_t increments) {
  return increments - c.result.observations.shared_counter;
}

TEST(GilThreads, CounterRaceLosesNothingAtBackEdgesButLosesWithPerInstructionChecks) {
  const std::map<std::string, std::string> wp = {{"tasks", "2"}, {"units", "1000000"}};
  // A short interval makes many switches happen within the run, so the per-instruction case
  // cannot miss the window by luck.
  const Cell back = run_model("gil_threads", 2, "cpu.counter_race", wp,
                              {{"switch_interval_us", "200"}, {"checkpoint", "backedge"}});
  expect_verified(back);
  EXPECT_GT(back.result.model_metrics["gil_switches"].get<uint64_t>(), 2u);
  EXPECT_EQ(lost_updates(back, 2'000'000), 0u);

  const Cell per = run_model("gil_threads", 2, "cpu.counter_race", wp,
                             {{"switch_interval_us", "200"}, {"checkpoint", "per_instruction"}});
  expect_verified(per);
  EXPECT_GT(lost_updates(per, 2'000'000), 0u);

  // x += one(): the call checks the eval breaker even on 3.10+.
  auto call_wp = wp;
  call_wp["call_between"] = "1";
  const Cell call = run_model("gil_threads", 2, "cpu.counter_race", call_wp,
                              {{"switch_interval_us", "200"}, {"checkpoint", "backedge"}});
  EXPECT_GT(lost_updates(call, 2'000'000), 0u);
}

// --gil-policy: each version range's checks as the race sees them. 3.2-3.9 checks between a
// unit's instructions and loses updates on x += 1; 3.10 and later check only at back-edges and
// calls and lose none, but lose on x += one(); 3.13's per-thread breaker behaves as the shared
// one with one interpreter.
TEST(GilThreads, EachPolicyLosesUpdatesWhereItsVersionsDo) {
  const std::map<std::string, std::string> wp = {{"tasks", "2"}, {"units", "1000000"}};
  auto call_wp = wp;
  call_wp["call_between"] = "1";
  for (const char* policy : {"3.2-3.9", "3.10", "3.11-3.12", "3.13+"}) {
    SCOPED_TRACE(policy);
    const std::map<std::string, std::string> mp = {{"switch_interval_us", "200"},
                                                   {"gil_policy", policy}};
    const Cell plain = run_model("gil_threads", 2, "cpu.counter_race", wp, mp);
    expect_verified(plain);
    EXPECT_EQ(plain.result.model_metrics["gil_policy"], policy);
    EXPECT_GT(plain.result.model_metrics["gil_switches"].get<uint64_t>(), 2u);
    if (std::string(policy) == "3.2-3.9")
      EXPECT_GT(lost_updates(plain, 2'000'000), 0u);
    else
      EXPECT_EQ(lost_updates(plain, 2'000'000), 0u);
    const Cell call = run_model("gil_threads", 2, "cpu.counter_race", call_wp, mp);
    expect_verified(call);
    EXPECT_GT(lost_updates(call, 2'000'000), 0u);
    EXPECT_EQ(call.result.model_metrics["eval_breaker"],
              std::string(policy) == "3.13+" ? "per_thread" : "shared");
    // CALL_FUNCTION's own check once the call has returned: gone in 3.11.
    EXPECT_EQ(call.result.model_metrics["checks_after_calls"].get<bool>(),
              std::string(policy) == "3.2-3.9" || std::string(policy) == "3.10");
  }
  // --checkpoint still overrides where the policy checks.
  const Cell over = run_model(
      "gil_threads", 2, "cpu.counter_race", wp,
      {{"switch_interval_us", "200"}, {"gil_policy", "3.2-3.9"}, {"checkpoint", "backedge"}});
  EXPECT_EQ(lost_updates(over, 2'000'000), 0u);
}

// 3.13's per-thread breaker, with one interpreter: a CPU-bound pair shares the lock as under
// 3.11-3.12, each thread's drop request reaching the holder through its own word.
TEST(GilThreads, APerThreadBreakerHandsOverAsTheSharedOneDoes) {
  // 80 ms of work: both threads are running long before it ends, even where starting one is
  // slow (ASan's thread creation took so long that the first thread ran alone, with 5 ms tasks).
  const std::map<std::string, std::string> wp = {{"tasks", "4"}, {"units", "20000"}};
  for (const char* policy : {"3.11-3.12", "3.13+"}) {
    SCOPED_TRACE(policy);
    const Cell c = run_model("gil_threads", 2, "cpu.spin", wp,
                             {{"switch_interval_us", "1000"}, {"gil_policy", policy}});
    expect_verified(c);
    // Each switch follows a timed-out wait's drop request, or a forced switch.
    EXPECT_GT(c.result.model_metrics["gil_drop_requests"].get<uint64_t>(), 2u);
    EXPECT_GT(c.result.model_metrics["gil_switches"].get<uint64_t>(), 2u);
  }
}

// 3.1's ticker lock: no interval and no drop request; the holder releases every check_interval
// checks and takes the lock straight back, so a waiter gets it only when it wins the race.
TEST(GilThreads, TheTickerLockReleasesEveryCheckIntervalWithoutDropRequests) {
  const Cell c = run_model("gil_threads", 2, "cpu.spin", {{"tasks", "4"}, {"units", "400"}},
                           {{"gil_policy", "3.1"}, {"check_interval", "10"}});
  expect_verified(c);
  const auto& m = c.result.model_metrics;
  EXPECT_EQ(m["gil_algorithm"], "ticker");
  EXPECT_EQ(m["gil_drop_requests"], 0u);
  EXPECT_EQ(m["gil_forced_switches"], 0u);
  // 1600 units, a check each, one release per 10: about 160 acquisitions.
  EXPECT_GT(m["gil_acquisitions"].get<uint64_t>(), 100u);
}

// Beazley 2009: on two cores, two CPU-bound threads under the old GIL take longer than one
// thread doing the same work, because each release signals a waiter that wakes on the other
// core to find the lock retaken. Here by about 30% with two idle CPUs, and by less when another
// process takes a core meanwhile (6% was seen beside a second ctest job; none, 0.96x to 1.02x,
// in a CI run whose checks could not yet see the host giving the two vCPUs one core's work).
// So: the median of five pairs, each measured between two checks that the cores were there.
TEST(GilThreads, UnderTheTickerLockTwoThreadsAreSlowerThanOneOnTwoCores) {
  const std::map<std::string, std::string> wp = {{"tasks", "8"}, {"units", "5000"}};
  auto timed = [&](int workers) {
    const auto t0 = std::chrono::steady_clock::now();
    const Cell c = run_model("gil_threads", workers, "cpu.spin", wp, {{"gil_policy", "3.1"}});
    expect_verified(c);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::vector<double> ratios = testing_helpers::measured_on_idle_cores(2, 5, 15, [&] {
    const double one = timed(1), two = timed(2);
    return two / one;
  });
  if (ratios.size() < 5)
    GTEST_SKIP() << "needs 2 idle CPUs for five pairs; the machine gave them for " << ratios.size()
                 << " of 15";
  std::ostringstream all;
  for (double r : ratios) all << " " << r;
  EXPECT_GT(testing_helpers::median_of(ratios), 1.0)
      << "two threads' time over one's:" << all.str();
}

TEST(GilThreads, FreeThreadsLoseUpdatesOnTwoCores) {
  // Lost updates need the two threads on two cores at the same time.
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const Cell c =
      run_model("free_threads", 2, "cpu.counter_race", {{"tasks", "2"}, {"units", "2000000"}});
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  expect_verified(c);
  EXPECT_GT(lost_updates(c, 4'000'000), 0u);
}

TEST(GilThreads, IoStepsReleaseTheGil) {
  // Two 300 ms sleeps: if the GIL were held while sleeping, the holder's hold time would cover
  // them; released, the threads hold it for almost nothing.
  const Cell c = run_model("gil_threads", 2, "io.sleep", {{"tasks", "2"}, {"sleep_us", "300000"}});
  expect_verified(c);
  EXPECT_LT(c.result.model_metrics["gil_hold_ns"].get<uint64_t>(), 100'000'000u);
  // Each thread took the GIL at start and again after each sleep.
  EXPECT_GE(c.result.model_metrics["gil_acquisitions"].get<uint64_t>(), 4u);
}

TEST(GilThreads, NativeSectionsReleaseTheGilAndSmallHashesDoNot) {
  const Cell big = run_model("gil_threads", 2, "cpu.sha256",
                             {{"tasks", "2"}, {"units", "64"}, {"buffer_bytes", "65536"}});
  expect_verified(big);
  // One acquisition per unit (after each released hash), plus the thread's first.
  EXPECT_GE(big.result.model_metrics["gil_acquisitions"].get<uint64_t>(), 128u);
  const Cell small = run_model("gil_threads", 2, "cpu.sha256",
                               {{"tasks", "2"}, {"units", "64"}, {"buffer_bytes", "1024"}});
  expect_verified(small);
  EXPECT_LT(small.result.model_metrics["gil_acquisitions"].get<uint64_t>(), 64u);
}

TEST(GilThreads, ThreadsAreConcurrentButNotParallel) {
  // Ratio within one run, wide margin: behind the GIL two threads cannot beat one by much. A
  // busy core would slow the one-worker run and make the ratio meaningless: idle CPUs first.
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const std::map<std::string, std::string> wp = {{"tasks", "4"}, {"units", "20000"}};
  auto best_time = [&](int workers) {
    double best = 1e9;
    for (int i = 0; i < 2; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const Cell c = run_model("gil_threads", workers, "cpu.spin", wp);
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      expect_verified(c);
    }
    return best;
  };
  const double t1 = best_time(1), t2 = best_time(2);
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  EXPECT_GT(t2 / t1, 1 / 1.3) << "1 worker " << t1 << " s, 2 workers " << t2 << " s";
}

TEST(GilThreads, EchoUnderLoadWaitsAboutOneIntervalPerRoundTrip) {
  // The convoy effect, with a 2 ms interval so the test is quick. A round trip that finds the
  // spinner holding the lock waits a full interval for its drop request; some slip through
  // while the spinner is still waking (real CPython 3.11 shows the same two modes). The
  // convoy needs the spinner on a core of its own beside the responder and the client; on a
  // busy machine the spinner is off-CPU and round trips slip through, so idle CPUs first.
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const Cell c =
      run_model("gil_threads", 2, "latency.echo_under_load",
                {{"cpu_workers", "1"}, {"round_trips", "40"}}, {{"switch_interval_us", "2000"}});
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  expect_verified(c);
  const auto& rtt = c.result.observations.rtt_ns;
  ASSERT_EQ(rtt.size(), 40u);
  const uint64_t slowest = *std::max_element(rtt.begin(), rtt.end());
  EXPECT_GE(slowest, 2'000'000u);  // at least one waited out a whole interval
  EXPECT_GE(c.result.model_metrics["gil_drop_requests"].get<uint64_t>(), 5u);
  EXPECT_EQ(c.result.observations.companions_started, 1u);
}

// ccbench's paced pings beside a spinner: a ping finds the spinner holding the lock and waits
// for its drop request, about one interval (2 ms here). Needs the spinner on a core of its own,
// as the back-to-back test above does. And the long hold: a spinner that checks only every 8 ms
// keeps a ping waiting past one interval, for about the hold.
TEST(GilThreads, APacedPingWaitsAboutOneIntervalAndALongHoldLonger) {
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const Cell c = run_model("gil_threads", 2, "latency.paced_ping",
                           {{"cpu_workers", "1"}, {"round_trips", "12"}, {"pace_ms", "10"}},
                           {{"switch_interval_us", "2000"}});
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  expect_verified(c);
  std::vector<uint64_t> d = c.result.observations.one_way_ns;
  ASSERT_EQ(d.size(), 12u);
  std::sort(d.begin(), d.end());
  EXPECT_GE(d[6], 1'000'000u);   // the median ping waited for the lock, most of an interval
  EXPECT_LE(d[6], 12'000'000u);  // and not for many

  const Cell h = run_model("gil_threads", 2, "latency.echo_long_hold",
                           {{"cpu_workers", "1"}, {"round_trips", "20"}, {"hold_us", "8000"}},
                           {{"switch_interval_us", "2000"}});
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  expect_verified(h);
  const auto& rtt = h.result.observations.rtt_ns;
  ASSERT_EQ(rtt.size(), 20u);
  EXPECT_GE(*std::max_element(rtt.begin(), rtt.end()), 4'000'000u);  // past two intervals
}

// threading.Thread.start: the caller holds the GIL and waits for each thread's started event,
// then for the GIL, which the started thread holds while it computes. The started thread lets
// it go only on a drop request, which comes a whole interval after the caller began waiting:
// so starting the second thread costs at least one interval, on any machine.
TEST(GilThreads, ThreadStartAsCPythonWaitsForTheGilBesideARunningThread) {
  const Cell c = run_model("gil_threads", 2, "cpu.spin", {{"tasks", "2"}, {"units", "20000"}},
                           {{"switch_interval_us", "2000"}, {"thread_start", "cpython"}});
  expect_verified(c);
  const auto& mm = c.result.model_metrics;
  EXPECT_EQ(mm["thread_start"], "cpython");
  EXPECT_GE(mm["thread_start_wait_ns"].get<uint64_t>(), 2'000'000u);
  // The caller's own acquisitions (before the first start, before the second) are counted.
  EXPECT_GE(mm["gil_acquisitions"].get<uint64_t>(), 4u);

  const Cell d = run_model("gil_threads", 2, "cpu.spin", {{"tasks", "2"}, {"units", "200"}},
                           {{"switch_interval_us", "2000"}});
  expect_verified(d);
  EXPECT_EQ(d.result.model_metrics["thread_start"], "direct");
  EXPECT_FALSE(d.result.model_metrics.contains("thread_start_wait_ns"));
}

TEST(GilThreads, CancelStopsThreadsWaitingForTheGil) {
  const Workload& w = *find_workload("cpu.spin");
  const TaskSet ts = w.make_tasks(
      Params::resolve(w.params(), {{"tasks", "4"}, {"units", "100000000"}}, "cpu.spin"), 1);
  auto m = find_model("gil_threads")->create();
  ModelConfig cfg;
  cfg.workers = 3;
  cfg.params = Params::resolve(find_model("gil_threads")->params, {}, "gil_threads");
  m->setup(cfg);
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    m->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  m->run(Batch{&ts.tasks, 1});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  canceller.join();
  m->teardown();
}

// 3.1 cannot be installed, so its calibration is always the default, and says why.
TEST(InterpCalibration, ThreeOneIsTheDefaultAndSaysWhy) {
  const InterpCalibration& c = interp_calibration(*find_gil_policy("3.1"));
  EXPECT_EQ(c.source, "default");
  EXPECT_NE(c.note.find("3.1"), std::string::npos) << c.note;
  EXPECT_GT(c.cost.bytecode_ns, 0);
  EXPECT_TRUE(c.to_json()["interpreter"].is_null());
}

// Where 3.11 or 3.12 is installed, the cost comes from it, and names it.
TEST(InterpCalibration, AMeasuredCostNamesItsInterpreter) {
  const InterpCalibration& c = interp_calibration(*find_gil_policy("3.11-3.12"));
  if (c.source != "measured") GTEST_SKIP() << "not measured here: " << c.note;
  EXPECT_FALSE(c.interpreter.empty());
  EXPECT_TRUE(c.version.rfind("3.11.", 0) == 0 || c.version.rfind("3.12.", 0) == 0) << c.version;
  EXPECT_GT(c.cost.bytecode_ns, 0);
  EXPECT_GT(c.syscall_round_ns, 0u);
  // The client's share is the Python cycle less the C++ one and the responder's work.
  ASSERT_GT(c.cycle_ns, 0u) << c.note;
  ASSERT_GT(c.cpp_cycle_ns, 0u) << c.note;
  const double extra = static_cast<double>(c.cycle_ns) - static_cast<double>(c.cpp_cycle_ns) -
                       static_cast<double>(c.cost.responder_round_ns);
  EXPECT_NEAR(static_cast<double>(c.cost.client_round_ns), extra > 0 ? extra : 0, 1.0);
  EXPECT_TRUE(c.to_json()["cycle_ns"].is_number());
  // Cached: the second call is the same object, measured once.
  EXPECT_EQ(&c, &interp_calibration(*find_gil_policy("3.11-3.12")));
  const InterpCalibration& d = interp_calibration(*find_gil_policy("3.11-3.12"), false);
  EXPECT_EQ(d.source, "default");
}

}  // namespace
}  // namespace concbench
