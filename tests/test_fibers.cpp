// The fibers model: every workload async runs verifies at one and two scheduler threads; a
// fiber switches only at IO (a CPU-only task is resumed exactly once, a sleeping one at least
// twice); sleeps overlap on one worker; max_inflight bounds the fibers in flight; cancellation
// is prompt, unwinds every fiber, and leaves the model usable; bad parameters are refused.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "concbench/clock.hpp"
#include "concbench/model.hpp"
#include "concbench/params.hpp"
#include "concbench/workload.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

// See asan_fake_stacks() in model_helpers.hpp.
#define SKIP_UNDER_ASAN_FAKE_STACKS()                                                   \
  do {                                                                                  \
    if (testing_helpers::asan_fake_stacks())                                            \
      GTEST_SKIP() << "ASan detect_stack_use_after_return=1: its fake stacks and "      \
                      "Boost.Context's fcontext switch do not mix (model_helpers.hpp)"; \
  } while (0)

using testing_helpers::expected_item;
using testing_helpers::start;

TaskSet tasks_of(const char* workload, std::map<std::string, std::string> given) {
  return testing_helpers::tasks_of(workload, given, 5);
}

void expect_all_verified(const BatchResult& r, const TaskSet& ts, const Batch& b) {
  for (size_t k = 0; k < r.done.size(); ++k) {
    EXPECT_TRUE(r.done[k]) << k;
    EXPECT_EQ(r.checksums[k], expected_item(ts, b, k)) << k;
  }
  for (const auto& f : r.failures) ADD_FAILURE() << f.item << ": " << f.reason;
}

// Small parameters per workload, so that the whole list runs in well under a second.
std::map<std::string, std::string> small_params(const Workload& w) {
  if (w.name() == "latency.echo_under_load")
    return {{"round_trips", "5"}, {"cpu_workers", "1"}, {"max_cpu_units", "2000"}};
  for (const ParamSpec& p : w.params())
    if (p.name == "tasks") return {{"tasks", "6"}};
  return {};
}

class FibersWorkers : public ::testing::TestWithParam<int> {};

TEST_P(FibersWorkers, EveryIoStepKindVerifies) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", GetParam());
  for (const char* io : {"sleep", "pipe_echo", "tcp_echo", "file_read"}) {
    SCOPED_TRACE(io);
    const TaskSet ts = tasks_of("mixed.cpu_io", {{"tasks", "12"},
                                                 {"cpu_us", "20"},
                                                 {"io_us", "300"},
                                                 {"io", io},
                                                 {"io_bytes", "70000"},
                                                 {"round_trips", "3"}});
    const Batch b{&ts.tasks, 2, 77};
    BatchResult r = m->run(b);
    ASSERT_EQ(r.done.size(), 24u);
    expect_all_verified(r, ts, b);
    EXPECT_EQ(r.latency_ns.size(), 24u);
    EXPECT_TRUE(r.span.set);
  }
  m->teardown();
}

TEST_P(FibersWorkers, EveryWorkloadAsyncRunsVerifies) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  const ModelInfo& async = *find_model("async");
  const ModelInfo& fibers = *find_model("fibers");
  auto m = start("fibers", GetParam());
  int ran = 0;
  for (const Workload* w : all_workloads()) {
    const std::string name(w->name());
    if (!async.runs(name)) continue;
    EXPECT_TRUE(fibers.runs(name)) << name;
    if (w->python_callable()) continue;  // a Python function: only the cpython.* models
    SCOPED_TRACE(name);
    const Params p = Params::resolve(w->params(), small_params(*w), name);
    const TaskSet ts = w->make_tasks(p, 11);
    // Tasks of the heavier workloads are short at their defaults; one round is enough.
    const Batch b{&ts.tasks, 1, 5};
    BatchResult r = m->run(b);
    expect_all_verified(r, ts, b);
    ++ran;
  }
  EXPECT_GT(ran, 5);
  m->teardown();
}

INSTANTIATE_TEST_SUITE_P(Workers, FibersWorkers, ::testing::Values(1, 2));

TEST(Fibers, AFiberSwitchesOnlyAtIo) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", 1);
  {
    // No IO: each task's fiber is resumed once to start and runs to its end.
    const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "16"}});
    const Batch b{&ts.tasks, 3};
    BatchResult r = m->run(b);
    expect_all_verified(r, ts, b);
    EXPECT_EQ(r.model_metrics["fiber_resumes"].get<uint64_t>(), 48u);
    EXPECT_EQ(r.model_metrics["tasks_started"].get<uint64_t>(), 48u);
    EXPECT_DOUBLE_EQ(r.model_metrics["resumes_per_task"].get<double>(), 1.0);
  }
  {
    // One sleep each: resumed to start and once more when its timer fires.
    const TaskSet ts = tasks_of("io.sleep", {{"tasks", "16"}, {"sleep_us", "200"}});
    const Batch b{&ts.tasks, 1};
    BatchResult r = m->run(b);
    expect_all_verified(r, ts, b);
    EXPECT_GE(r.model_metrics["fiber_resumes"].get<uint64_t>(), 32u);
    EXPECT_GE(r.model_metrics["resumes_per_task"].get<double>(), 2.0);
  }
  m->teardown();
}

TEST(Fibers, SleepsOverlapOnOneWorker) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", 1);
  // 32 sleeps of 20 ms: 640 ms one after another. Sleeping needs no CPU, so even a busy machine
  // finishes them together in a fraction of that.
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "32"}, {"sleep_us", "20000"}});
  const Batch b{&ts.tasks, 1};
  const uint64_t t0 = monotonic_ns();
  BatchResult r = m->run(b);
  const uint64_t wall = monotonic_ns() - t0;
  expect_all_verified(r, ts, b);
  EXPECT_LT(wall, 320'000'000u);
  EXPECT_EQ(r.model_metrics["max_inflight"], 32);
  EXPECT_EQ(r.model_metrics["fibers_created"], 32);
  m->teardown();
}

TEST(Fibers, MaxInflightBoundsTheFibersInFlight) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", 2, {{"max_inflight", "4"}});
  // 24 sleeps of 10 ms, at most 4 at a time: at least 6 waves, so at least 60 ms (a lower bound
  // no machine noise can break). The pool was made in setup: 4 fibers, reused.
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "24"}, {"sleep_us", "10000"}});
  const Batch b{&ts.tasks, 1};
  const uint64_t t0 = monotonic_ns();
  BatchResult r = m->run(b);
  const uint64_t wall = monotonic_ns() - t0;
  expect_all_verified(r, ts, b);
  EXPECT_GE(wall, 60'000'000u);
  EXPECT_EQ(r.model_metrics["max_inflight"], 4);
  EXPECT_EQ(r.model_metrics["fibers_created"], 4);
  EXPECT_EQ(r.model_metrics["scheduler_threads"], 2);
  m->teardown();
}

TEST(Fibers, CancellingMidBatchIsPromptAndTheNextBatchRuns) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", 1);
  {
    // Sleeps of an hour: every fiber is suspended on the loop when the cancel comes.
    const TaskSet ts = tasks_of("io.sleep", {{"tasks", "8"}, {"sleep_us", "3600000000"}});
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      m->cancel();
    });
    const uint64_t t0 = monotonic_ns();
    BatchResult r = m->run(Batch{&ts.tasks, 1});
    canceller.join();
    EXPECT_LT(monotonic_ns() - t0, 5'000'000'000u);
    for (auto d : r.done) EXPECT_FALSE(d);
    EXPECT_TRUE(r.failures.empty());
  }
  {
    // The responder waits in a read while a spinner holds the only worker; cancel stops both.
    const TaskSet ts = tasks_of("latency.echo_under_load",
                                {{"round_trips", "20"}, {"max_cpu_units", "100000000"}});
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      m->cancel();
    });
    const uint64_t t0 = monotonic_ns();
    BatchResult r = m->run(Batch{&ts.tasks, 1});
    canceller.join();
    EXPECT_LT(monotonic_ns() - t0, 5'000'000'000u);
    for (auto d : r.done) EXPECT_FALSE(d);
  }
  // The fibers were unwound and parked: the next batch reuses them and verifies.
  const TaskSet ts = tasks_of("mixed.cpu_io", {{"tasks", "8"}, {"io", "pipe_echo"}});
  const Batch b{&ts.tasks, 2, 9};
  BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  m->teardown();
}

TEST(Fibers, ACancelBetweenBatchesStopsTheNextOneOnly) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  auto m = start("fibers", 1);
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "4"}});
  m->cancel();
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  for (auto d : r.done) EXPECT_FALSE(d);
  const Batch b{&ts.tasks, 1};
  BatchResult again = m->run(b);
  expect_all_verified(again, ts, b);
  m->teardown();
}

TEST(Fibers, BadParametersAreRefused) {
  SKIP_UNDER_ASAN_FAKE_STACKS();
  const ModelInfo& info = *find_model("fibers");
  EXPECT_EQ(info.in_flight_per_worker, 0);
  EXPECT_FALSE(info.single_worker);
  EXPECT_THROW(Params::resolve(info.params, {{"max_inflight", "-1"}}, "fibers"), UsageError);
  EXPECT_THROW(Params::resolve(info.params, {{"stack_kb", "4"}}, "fibers"), UsageError);
  EXPECT_THROW(Params::resolve(info.params, {{"stack_kb", "1000000"}}, "fibers"), UsageError);
}

}  // namespace
}  // namespace concbench
