// interpreters: every workload it runs verifies; each interpreter's GIL is its own (no thread ever
// waits for another's, and with idle CPUs two interpreters run in parallel); exactly the payload
// crosses in, the payload and the checksum out.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "concbench/checksum.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using testing_helpers::expected_item;
using testing_helpers::start;
using testing_helpers::tasks_of;

Batch batch_of(const TaskSet& ts, uint64_t rounds = 1, uint64_t stride = 1) {
  static uint64_t draws = 0;
  return Batch{&ts.tasks, rounds, mix64(0x696e7470ULL + ++draws), stride};
}

void expect_all_verified(const BatchResult& r, const TaskSet& ts, const Batch& b) {
  EXPECT_TRUE(r.failures.empty()) << (r.failures.empty() ? "" : r.failures[0].reason);
  ASSERT_EQ(r.done.size(), b.items());
  for (size_t k = 0; k < r.done.size(); ++k) {
    ASSERT_TRUE(r.done[k]) << k;
    EXPECT_EQ(r.checksums[k], expected_item(ts, b, k)) << k;
  }
}

TEST(Interpreters, SharesNothingPythonLevel) {
  const ModelInfo& info = *find_model("interpreters");
  EXPECT_FALSE(info.runs("cpu.counter_race"));
  for (const Workload* w : all_workloads())
    if (w->needs_shared_memory()) {
      EXPECT_FALSE(info.runs(w->name())) << w->name();
    }
  EXPECT_TRUE(info.runs("cpu.spin"));
  EXPECT_TRUE(info.runs("io.pipe_echo"));
}

// Small parameters: each workload's defaults where they are already small, shrunk otherwise.
std::map<std::string, std::string> small_params(const Workload& w) {
  std::map<std::string, std::string> p;
  for (const ParamSpec& s : w.params()) {
    if (s.name == "tasks") p["tasks"] = "6";
    if (s.name == "units") p["units"] = "20";
    if (s.name == "sleep_us") p["sleep_us"] = "200";
    if (s.name == "cpu_us") p["cpu_us"] = "20";
    if (s.name == "bytes") p["bytes"] = "4096";
    if (s.name == "payload_bytes") p["payload_bytes"] = "512";
  }
  return p;
}

TEST(Interpreters, EverySupportedWorkloadVerifiesAtOneAndTwoWorkers) {
  const ModelInfo& info = *find_model("interpreters");
  for (int workers : {1, 2}) {
    auto m = start("interpreters", workers);
    for (const std::string& name : info.workloads) {
      SCOPED_TRACE(name + " x" + std::to_string(workers));
      const Workload& w = *find_workload(name);
      const TaskSet ts = tasks_of(name.c_str(), small_params(w));
      const Batch b = batch_of(ts, 2);
      const BatchResult r = m->run(b);
      expect_all_verified(r, ts, b);
      EXPECT_EQ(r.model_metrics["interpreters"], workers);
    }
    m->teardown();
  }
}

// Calibrated as gil_threads is, from 3.13's interpreter where installed; the report says which.
TEST(Interpreters, RecordsTheInterpreterCostItRunsWith) {
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "2"}, {"units", "5"}});
  for (const char* cost : {"measured", "default"}) {
    SCOPED_TRACE(cost);
    auto m = start("interpreters", 1, {{"interpreter_cost", cost}});
    const Batch b = batch_of(ts);
    const BatchResult r = m->run(b);
    expect_all_verified(r, ts, b);
    const nlohmann::json& c = r.model_metrics["interpreter_cost"];
    ASSERT_TRUE(c.is_object()) << r.model_metrics.dump();
    EXPECT_GT(c["bytecode_ns"].get<double>(), 0.0);
    if (std::string(cost) == "default") {
      EXPECT_EQ(c["source"], "default");
    } else {
      EXPECT_TRUE(c["source"] == "measured" || !c["note"].get<std::string>().empty()) << c.dump();
    }
    m->teardown();
  }
}

TEST(Interpreters, EachGilHasOneThreadAndNobodyWaitsForIt) {
  auto m = start("interpreters", 2, {{"switch_interval_us", "100"}});
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "16"}, {"units", "2000"}});
  const Batch b = batch_of(ts);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  const auto& mm = r.model_metrics;
  // A drop request is made only by a thread that waited a whole interval for a GIL another thread
  // held: with one thread per GIL there is none, however the threads are scheduled.
  EXPECT_EQ(mm["gil_drop_requests"], 0);
  EXPECT_EQ(mm["gil_forced_switches"], 0);
  EXPECT_EQ(mm["gil_acquisitions"], 16);
  ASSERT_EQ(mm["per_interpreter"].size(), 2u);
  for (const auto& p : mm["per_interpreter"]) {
    EXPECT_EQ(p["gil_threads"], 1);
    EXPECT_LE(p["gil_switches"].get<uint64_t>(), 1u);  // its one thread, once
    EXPECT_EQ(p["gil_drop_requests"], 0);
  }
  m->teardown();
}

TEST(Interpreters, TwoInterpretersRunInParallel) {
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  auto m = start("interpreters", 2);
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "8"}, {"units", "200000"}});
  const Batch b = batch_of(ts);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  ASSERT_TRUE(r.span.set);
  const double cpu = static_cast<double>(r.span.cpu_user_ns + r.span.cpu_sys_ns);
  const double parallelism = cpu / static_cast<double>(r.span.wall_ns);
  CONCBENCH_REQUIRE_IDLE_CPUS(2);
  EXPECT_GT(parallelism, 1.5) << "CPU/wall over the batch";
  m->teardown();
}

TEST(Interpreters, ThePayloadCrossesInAndItAndTheChecksumCrossBack) {
  auto m = start("interpreters", 2);
  const TaskSet ts =
      tasks_of("cpu.spin", {{"tasks", "10"}, {"units", "10"}, {"payload_bytes", "4096"}});
  const Batch b = batch_of(ts, 3);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  const auto& mm = r.model_metrics;
  EXPECT_EQ(mm["bytes_in_per_task"].get<double>(), 4096.0);
  EXPECT_EQ(mm["bytes_out_per_task"].get<double>(), 4096.0 + 8.0);
  EXPECT_EQ(mm["bytes_in"], 30u * 4096u);
  EXPECT_EQ(mm["crossing_sampling"]["samples"], 30);
  EXPECT_GT(mm["crossing_ns"].get<uint64_t>(), 0u);
  EXPECT_GT(mm["startup_ns"].get<uint64_t>(), 0u);
  m->teardown();
}

TEST(Interpreters, CancelReturnsPromptly) {
  auto m = start("interpreters", 2);
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "6"}, {"sleep_us", "30000000"}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    m->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const BatchResult r = m->run(Batch{&ts.tasks, 1});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  canceller.join();
  for (uint8_t d : r.done) EXPECT_FALSE(d);
  m->teardown();
}

}  // namespace
}  // namespace concbench
