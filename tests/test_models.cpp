// The models run every item exactly once, verify, record failures, sum counters and stop when
// cancelled.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "concbench/model.hpp"
#include "concbench/workload.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using testing_helpers::expected_item;
using testing_helpers::start;

TaskSet tasks_of(const char* workload, std::map<std::string, std::string> given) {
  return testing_helpers::tasks_of(workload, given, 3);
}

class EveryModel : public ::testing::TestWithParam<std::tuple<const char*, int>> {};

TEST_P(EveryModel, RunsEveryItemOnceAndVerifies) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers);
  for (const char* wl : {"cpu.spin", "io.pipe_echo", "overhead.noop", "mixed.cpu_io"}) {
    SCOPED_TRACE(wl);
    const TaskSet ts = tasks_of(wl, {{"tasks", "7"}, {"units", "10"}});
    const Batch batch{&ts.tasks, 3};
    BatchResult r = m->run(batch);
    ASSERT_EQ(r.done.size(), 21u);
    for (size_t k = 0; k < r.done.size(); ++k) {
      EXPECT_TRUE(r.done[k]) << k;
      EXPECT_EQ(r.checksums[k], expected_item(ts, k)) << k;
    }
    EXPECT_EQ(r.latency_ns.size(), 21u);
    EXPECT_TRUE(r.failures.empty());
    // Summed counters are available where the probe says they are, never silently zero-filled.
    EXPECT_EQ(r.counters.has(Counter::cycles), counter_probe().available(Counter::cycles));
    EXPECT_TRUE(r.counters.has(Counter::voluntary_context_switches));
  }
  m->teardown();
}

TEST_P(EveryModel, AThrowingTaskIsRecordedAndTheRestVerify) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers);
  TaskSet ts = tasks_of("cpu.spin", {{"tasks", "5"}, {"units", "5"}});
  ts.tasks[2].steps[0].kernel = 999;  // no such kernel: execute_task throws
  const Batch batch{&ts.tasks, 1};
  BatchResult r = m->run(batch);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].item, 2u);
  EXPECT_NE(r.failures[0].reason.find("bad kernel id"), std::string::npos);
  EXPECT_FALSE(r.done[2]);
  for (size_t k : {0, 1, 3, 4}) EXPECT_EQ(r.checksums[k], expected_item(ts, k));
  m->teardown();
}

TEST_P(EveryModel, CancelStopsALongBatchPromptly) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers);
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "4"}, {"sleep_us", "30000000"}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    m->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  canceller.join();
  EXPECT_LT(elapsed, std::chrono::seconds(5));  // each sleep would take 30 s
  for (auto d : r.done) EXPECT_FALSE(d);
  m->teardown();
}

INSTANTIATE_TEST_SUITE_P(
    Models, EveryModel,
    ::testing::Values(std::make_tuple("serial", 1), std::make_tuple("free_threads", 1),
                      std::make_tuple("free_threads", 3), std::make_tuple("gil_threads", 2),
                      std::make_tuple("thread_pool", 1), std::make_tuple("thread_pool", 3),
                      std::make_tuple("pinned_pool", 2), std::make_tuple("async", 1),
                      std::make_tuple("async_mt", 1), std::make_tuple("async_mt", 3)));

TEST(FreeThreads, RunsInParallelOnTwoCores) {
  // A ratio within one run, with a wide margin: two threads must overlap real work. It needs
  // two idle cores for the whole measurement: checked before and after, skipped otherwise.
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "8"}, {"units", "3000"}});
  auto one = start("free_threads", 1), two = start("free_threads", 2);
  auto time_of = [&](Model& m) {
    auto best = std::chrono::steady_clock::duration::max();
    for (int i = 0; i < 3; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      m.run(Batch{&ts.tasks, 1});
      best = std::min(best, std::chrono::steady_clock::now() - t0);
    }
    return std::chrono::duration<double>(best).count();
  };
  const double t1 = time_of(*one), t2 = time_of(*two);
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  EXPECT_GT(t1 / t2, 1.25) << "1 worker " << t1 << " s, 2 workers " << t2 << " s";
}

TEST(FreeThreads, SpawnPerTaskRunsEveryTaskOnAThreadOfItsOwn) {
  auto m = start("free_threads", 2, {{"spawn", "per_task"}});
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "9"}, {"units", "5"}});
  BatchResult r = m->run(Batch{&ts.tasks, 2});
  for (size_t k = 0; k < r.done.size(); ++k) EXPECT_EQ(r.checksums[k], expected_item(ts, k)) << k;
  EXPECT_EQ(r.model_metrics["threads_started"], 2 + 18);
  EXPECT_EQ(r.model_metrics["spawn"], "per_task");
  // A failing task on its own thread is still a recorded failure, not a crash.
  TaskSet bad = ts;
  bad.tasks[0].steps[0].kernel = 999;
  r = m->run(Batch{&bad.tasks, 1});
  EXPECT_EQ(r.failures.size(), 1u);
  m->teardown();
}

TEST(Pools, WorkersReportWhereTheyRanAndPinnedOnesWhereTheyWereBound) {
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "8"}, {"units", "5"}});
  for (const char* name : {"thread_pool", "pinned_pool"}) {
    SCOPED_TRACE(name);
    auto m = start(name, 2,
                   std::string(name) == "pinned_pool"
                       ? std::map<std::string, std::string>{{"pin", "compact"}}
                       : std::map<std::string, std::string>{});
    BatchResult r = m->run(Batch{&ts.tasks, 1});
    const auto& workers = r.model_metrics["workers"];
    ASSERT_EQ(workers.size(), 2u);
    bool all_bound = std::string(name) == "pinned_pool";
    for (const auto& w : workers) all_bound = all_bound && w.value("bound", false);
    if (std::string(name) == "pinned_pool" && !all_bound)
      GTEST_SKIP() << "hwloc refused to bind here: " << workers.dump();
    // A worker bound to one PU cannot migrate; its counters were opened after binding. Where
    // the machine cannot count migrations the probe must say why (cpus_seen below still holds).
    if (all_bound) {
      if (r.counters.has(Counter::cpu_migrations)) {
        EXPECT_EQ(*r.counters.get(Counter::cpu_migrations), 0u);
      } else {
        EXPECT_TRUE(counter_probe().unavailable.count("cpu_migrations"));
      }
    }
    for (const auto& w : workers) {
      EXPECT_FALSE(w["cpus_seen"].empty());
      if (std::string(name) == "pinned_pool") {
        ASSERT_TRUE(w["bound_pu"].is_number());
        if (w["bound"].get<bool>()) {
          // A bound worker is only ever seen on its PU.
          ASSERT_EQ(w["cpus_seen"].size(), 1u) << w.dump();
          EXPECT_EQ(w["cpus_seen"][0], w["bound_pu"]);
        } else {
          EXPECT_FALSE(w["bind_error"].get<std::string>().empty());
        }
      } else {
        EXPECT_TRUE(w["bound_pu"].is_null());
      }
    }
    m->teardown();
  }
}

TEST(Pools, APlacementThisMachineCannotHonourIsRefusedUpFront) {
  const ModelInfo& info = *find_model("pinned_pool");
  ASSERT_TRUE(info.validate);
  EXPECT_THROW(info.validate(Params::resolve(info.params, {{"pin", "list:99999"}}, "pinned_pool")),
               UsageError);
  EXPECT_THROW(info.validate(Params::resolve(info.params, {{"pin", "sideways"}}, "pinned_pool")),
               UsageError);
  EXPECT_NO_THROW(info.validate(Params::resolve(info.params, {{"pin", "list:0"}}, "pinned_pool")));
}

TEST(Registry, SerialIsSingleWorker) {
  ASSERT_NE(find_model("serial"), nullptr);
  EXPECT_TRUE(find_model("serial")->single_worker);
  EXPECT_FALSE(find_model("free_threads")->single_worker);
  EXPECT_EQ(find_model("nope"), nullptr);
}

}  // namespace
}  // namespace concbench
