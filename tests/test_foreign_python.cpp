// py:<label>.* models: other interpreters driven over a socket by harness/driver. CPython 3.11
// (/usr/bin/python3) is always checked; jython and pypy3 are when installed.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "concbench/attribution.hpp"
#include "concbench/foreign_python.hpp"
#include "concbench/params.hpp"
#include "model_helpers.hpp"

using namespace concbench;
using namespace concbench::testing_helpers;

namespace {

bool executable(const char* p) {
  return access(p, X_OK) == 0;
}

std::string label_of(const char* path) {
  return register_foreign_python(path);
}

// Runs two batches of `workload` and checks every checksum against the workload's prediction.
void verifies(const std::string& model, const char* workload,
              const std::map<std::string, std::string>& params, int workers) {
  SCOPED_TRACE(model + " " + workload + " workers=" + std::to_string(workers));
  const TaskSet ts = tasks_of(workload, params);
  auto m = start(model.c_str(), workers);
  for (uint64_t nonce : {uint64_t{7}, uint64_t{0xfedcba9876543210ULL}}) {
    Batch b{&ts.tasks, 2, nonce, 4};
    const BatchResult r = m->run(b);
    ASSERT_TRUE(r.failures.empty()) << r.failures[0].reason;
    for (uint64_t k = 0; k < b.items(); ++k) {
      ASSERT_TRUE(r.done[k]) << k;
      ASSERT_EQ(r.checksums[k], expected_item(ts, b, k)) << k;
    }
    EXPECT_TRUE(r.span.set);
    EXPECT_GT(r.span.wall_ns, 0u);
    EXPECT_TRUE(r.has_child_cpu);
    const bool pool = model.ends_with(".process_pool");
    // The driver, and a pool's processes; a pool's chunks carry no per-task latency.
    ASSERT_EQ(r.worker_pids.size(), 1u + (pool ? static_cast<size_t>(workers) : 0u));
    if (!pool) {
      EXPECT_NE(r.latency_ns[0], BatchResult::kNoSample);
    }
    // Where the driver's workers spent the batch: one record per worker (a pool's dispatcher
    // too), each with its schedstat, and the parts adding up to the batch's wall time up to
    // the run-queue overlap (a loaded machine moves time between parts, not out of the sum).
    ASSERT_TRUE(r.attribution_unavailable.empty()) << r.attribution_unavailable;
    const size_t single = model.ends_with(".asyncio") || model.ends_with(".serial");
    EXPECT_EQ(r.attribution.size(), single ? 1u : static_cast<size_t>(workers) + (pool ? 1u : 0u));
    const nlohmann::json a = attribute_repetition(r.span.wall_ns, r.attribution, "");
    for (const auto& w : a["workers"]) {
      ASSERT_FALSE(w.contains("sched_unavailable")) << w.dump();
      const double un = std::abs(w["parts"]["unattributed"].get<double>());
      EXPECT_LE(un, 0.1 * static_cast<double>(r.span.wall_ns) +
                        w["parts"]["runqueue"].get<double>() + 2e6)
          << w.dump();
    }
  }
  m->teardown();
}

void verifies_all(const std::string& label) {
  for (const char* kind : {"serial", "threading", "asyncio", "process_pool"})
    for (int w : {1, 2}) {
      const std::string model = "py:" + label + "." + kind;
      // asyncio: Python 3.7 and later; process_pool: where multiprocessing forks (not Jython)
      if (find_model(model) == nullptr) continue;
      if (find_model(model)->single_worker && w > 1) continue;
      verifies(model, "cpu.spin", {{"tasks", "6"}, {"units", "5"}}, w);
      verifies(model, "io.sleep", {{"tasks", "4"}, {"sleep_us", "2000"}}, w);
      verifies(model, "overhead.noop", {{"tasks", "20"}, {"payload_bytes", "37"}}, w);
    }
}

}  // namespace

TEST(ForeignPython, CPython311Verifies) {
  ASSERT_TRUE(executable("/usr/bin/python3"));
  const std::string label = label_of("/usr/bin/python3");
  EXPECT_EQ(label.rfind("cpython-3.", 0), 0u) << label;
  ASSERT_NE(find_model("py:" + label + ".threading"), nullptr);
  EXPECT_TRUE(find_model("py:" + label + ".serial")->single_worker);
  ASSERT_NE(find_model("py:" + label + ".asyncio"), nullptr);
  ASSERT_NE(find_model("py:" + label + ".process_pool"), nullptr);
  EXPECT_TRUE(find_model("py:" + label + ".process_pool")->separate_processes);
  EXPECT_EQ(find_model("py:" + label + ".asyncio")->in_flight_per_worker, 0);
  verifies_all(label);
}

TEST(ForeignPython, SameInterpreterTwiceRegistersOnce) {
  EXPECT_EQ(label_of("/usr/bin/python3"), label_of("/usr/bin/python3"));
}

TEST(ForeignPython, JythonVerifiesAndScales) {
  if (!executable("/usr/bin/jython")) GTEST_SKIP() << "jython is not installed (/usr/bin/jython)";
  const std::string label = label_of("/usr/bin/jython");
  EXPECT_EQ(label, "jython-2.7");
  verifies_all(label);
  // The JVM has no interpreter lock: two threads of pure-Python spin do twice the work in the
  // same time. Both sides run in one JVM with two threads: one item (one thread works, the
  // other finds nothing to claim) against two items of the same size. Two JVMs, one per worker
  // count, differed by up to 1.5x in the code their compilers made for the same loop.
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "2"}, {"units", "1200"}});
  const std::vector<Task> first(ts.tasks.begin(), ts.tasks.begin() + 1);
  auto m = start(("py:" + label + ".threading").c_str(), 2);
  uint64_t nonce = 100;
  auto wall_of = [&](const std::vector<Task>& tasks) {
    Batch b{&tasks, 1, nonce++, 1};
    const BatchResult r = m->run(b);
    EXPECT_TRUE(r.failures.empty());
    for (size_t k = 0; k < tasks.size(); ++k)
      EXPECT_EQ(r.checksums.at(k), seal(ts.expected[k], b.item_nonce(k))) << k;
    return static_cast<double>(r.span.wall_ns);
  };
  // The JVM compiles the spin loop on background threads during the first batches: ten warm-ups
  // (the first took 4x the tenth, the fifth still 1.3x), so the measured ones run compiled code.
  for (int i = 0; i < 10; ++i) wall_of(ts.tasks);
  // The best of five pairs of batches, one item then two, each pair started once a check
  // found the two CPUs there (measured_on_idle_cores); alternating, as the compiled code still
  // got faster from batch to batch. Not checked after: the JVM's compiler and collector threads
  // run on after a batch (the check after failed 9 times in 10 here). They, and a dip, only ever
  // slow a batch down (by up to 3x here), and the best of five is the batch they spared.
  std::vector<double> t1, t2;
  measured_on_idle_cores(
      2, 5, 12,
      [&] {
        t1.push_back(wall_of(first));
        t2.push_back(wall_of(ts.tasks));
        return 0.0;
      },
      false);
  m->teardown();
  if (t1.size() < 5)
    GTEST_SKIP() << "needs 2 idle CPUs for five pairs of batches; the machine gave them for "
                 << t1.size() << " of 12";
  const double best1 = *std::min_element(t1.begin(), t1.end());
  const double best2 = *std::min_element(t2.begin(), t2.end());
  // Two items' work over one's, per unit of time.
  const double speedup = 2 * best1 / best2;
  RecordProperty("speedup_2_workers", std::to_string(speedup));
  std::cout << "jython cpu.spin: 2 threads do " << speedup << "x the work of 1\n";
  // Behind a lock two items take at least twice one's time (1.0x or less). Without one, Jython
  // gave 1.16x to 2.07x in 10 runs here (Intel VM): a lone thread ran either at about 140 ms or
  // at about 230 ms a batch, and two at once at 200 to 260 ms, whatever the host did. 1.1 tells
  // no lock from a lock, with the margin the JVM's own spread leaves.
  EXPECT_GE(speedup, 1.1) << "1 item " << best1 / 1e6 << " ms, 2 items " << best2 / 1e6 << " ms";
}

TEST(ForeignPython, PyPyVerifies) {
  if (!executable("/usr/bin/pypy3")) GTEST_SKIP() << "pypy3 is not installed (/usr/bin/pypy3)";
  const std::string label = label_of("/usr/bin/pypy3");
  EXPECT_EQ(label.rfind("pypy-3.", 0), 0u) << label;
  verifies_all(label);
}

TEST(ForeignPython, NoInterpreterIsAUsageError) {
  EXPECT_THROW(register_foreign_python("/nonexistent/python"), UsageError);
  try {
    register_foreign_python("/bin/false");
    FAIL() << "no hello from /bin/false";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with status 1"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(ForeignPython, CrashingDriverFailsTheBatchWithItsLastWords) {
  const std::string label = label_of("/usr/bin/python3");
  const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "5"}});
  setenv("CONCBENCH_DRIVER_FAULT", "exit_in_run", 1);
  auto m = start(("py:" + label + ".threading").c_str(), 2);
  Batch b{&ts.tasks, 1, 1, 1};
  const BatchResult r = m->run(b);
  unsetenv("CONCBENCH_DRIVER_FAULT");
  ASSERT_FALSE(r.failures.empty());
  EXPECT_NE(r.failures[0].reason.find("status 3"), std::string::npos) << r.failures[0].reason;
  EXPECT_NE(r.failures[0].reason.find("injected fault"), std::string::npos) << r.failures[0].reason;
  for (uint64_t k = 0; k < b.items(); ++k) EXPECT_FALSE(r.done[k]);
  // The next batch starts a fresh driver.
  const BatchResult again = m->run(b);
  EXPECT_TRUE(again.failures.empty());
  m->teardown();
}

TEST(ForeignPython, CancelOfAHungDriverReturnsPromptly) {
  const std::string label = label_of("/usr/bin/python3");
  const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "5"}});
  setenv("CONCBENCH_DRIVER_FAULT", "hang_in_run", 1);
  auto m = start(("py:" + label + ".serial").c_str(), 1);
  unsetenv("CONCBENCH_DRIVER_FAULT");
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    m->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  Batch b{&ts.tasks, 1, 1, 1};
  const BatchResult r = m->run(b);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_TRUE(r.failures.empty());  // cancelled: not done, not failed
  for (uint64_t k = 0; k < b.items(); ++k) EXPECT_FALSE(r.done[k]);
  m->teardown();
}

// A pool's processes are the cell's workers: their CPU is in the span's, their memory in the
// repetition's, and a cancel (which kills the driver) leaves none of them behind.
TEST(ForeignPython, AProcessPoolCountsItsWorkersAndLeavesNoneBehind) {
  const std::string label = label_of("/usr/bin/python3");
  const std::string model = "py:" + label + ".process_pool";
  auto m = start(model.c_str(), 2);
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "8"}, {"units", "20"}});
  Batch b{&ts.tasks, 1, 7, 1};
  const BatchResult r = m->run(b);
  EXPECT_TRUE(r.failures.empty());
  EXPECT_TRUE(r.has_child_cpu);
  ASSERT_EQ(r.worker_pids.size(), 3u);  // the driver and its two pool processes
  std::vector<int> pool(r.worker_pids.begin() + 1, r.worker_pids.end());
  m->cancel();
  m->teardown();
  for (int pid : pool) {
    // Killed by SIGKILL with the driver; reparented, so poll /proc until each is gone.
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone =
          kill(pid, 0) != 0 || ::access(("/proc/" + std::to_string(pid) + "/stat").c_str(), 0) != 0;
      std::string state;
      if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r")) {
        char buf[512] = {0};
        if (std::fgets(buf, sizeof buf, f)) state = buf;
        std::fclose(f);
        const size_t close = state.rfind(')');
        if (close != std::string::npos && close + 2 < state.size() && state[close + 2] == 'Z')
          gone = true;  // a zombie awaiting its new parent's wait: it runs nothing
      }
      if (!gone) usleep(10000);
    }
    EXPECT_TRUE(gone) << "pool process " << pid << " outlived its driver";
  }
}
