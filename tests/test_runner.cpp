// The runner's matrix, calibration, verification and timeout handling.
#include <gtest/gtest.h>

#include <chrono>

#include "concbench/config.hpp"
#include "concbench/model.hpp"
#include "concbench/report.hpp"
#include "concbench/runner.hpp"

namespace concbench {
namespace {

RunConfig tiny() {
  RunConfig c = suite_config("smoke");
  c.workloads = {"cpu.spin"};
  c.models = {"serial", "free_threads"};
  c.workers = {1, 2};
  c.repetitions = 2;
  c.min_time_s = 0;
  return c;
}

TEST(Runner, MatrixGivesSerialOneCell) {
  RunConfig c = tiny();
  c.workloads = {"cpu.spin", "io.sleep"};
  c.workers = {1, 2, 4};
  const auto cells = expand_matrix(c);
  ASSERT_EQ(cells.size(), 2u * (1 + 3));
  EXPECT_EQ(cells[0].model, "serial");
  EXPECT_EQ(cells[0].workers, 1);
  EXPECT_EQ(cells[3].model, "free_threads");
  EXPECT_EQ(cells[3].workers, 4);
  EXPECT_EQ(cells[4].workload, "io.sleep");
}

TEST(Runner, SharedMemoryWorkloadsAreNotRunAcrossProcesses) {
  RunConfig c = tiny();
  c.workloads = {"latency.echo_under_load", "cpu.spin"};
  c.models = {"gil_threads", "process_pool"};
  const auto cells = expand_matrix(c);
  for (const auto& cell : cells)
    EXPECT_FALSE(cell.workload == "latency.echo_under_load" && cell.model == "process_pool");
  EXPECT_EQ(cells.size(), 1u + 2u + 2u);  // echo under gil_threads; cpu.spin under both, 1 and 2
  c.workloads = {"latency.echo_under_load"};
  c.models = {"process_pool"};
  EXPECT_THROW(validate(c), UsageError);
}

TEST(Runner, ValidateRejectsBadInput) {
  auto bad = [](auto mutate) {
    RunConfig c = tiny();
    mutate(c);
    EXPECT_THROW(validate(c), UsageError);
  };
  bad([](RunConfig& c) { c.workloads = {"cpu.nope"}; });
  bad([](RunConfig& c) { c.models = {"gil"}; });
  bad([](RunConfig& c) { c.workers = {0}; });
  bad([](RunConfig& c) { c.workers = {-2}; });
  bad([](RunConfig& c) { c.repetitions = 0; });
  bad([](RunConfig& c) { c.timeout_s = 0; });
  bad([](RunConfig& c) { c.params["tasks"] = "0"; });
  bad([](RunConfig& c) { c.params["tasks"] = "many"; });
  bad([](RunConfig& c) { c.params["sleep_us"] = "5"; });  // io.sleep is not selected
  bad([](RunConfig& c) { c.params["bogus"] = "1"; });
  EXPECT_THROW(suite_config("huge"), UsageError);
  EXPECT_NO_THROW(validate(tiny()));
}

TEST(Runner, CellsVerifyAndRecordEveryRepetition) {
  RunConfig c = tiny();
  const auto cells = run_suite(c);
  ASSERT_EQ(cells.size(), 3u);
  for (const auto& cell : cells) {
    SCOPED_TRACE(cell.model + "/" + std::to_string(cell.workers));
    EXPECT_EQ(cell.status, "ok") << cell.error;
    ASSERT_EQ(cell.repetitions.size(), 2u);
    for (const auto& r : cell.repetitions) {
      EXPECT_TRUE(r.verified);
      EXPECT_EQ(r.tasks, 8u);
      EXPECT_GT(r.wall_ns, 0u);
      EXPECT_GT(r.throughput_per_s, 0);
      EXPECT_GT(r.latency.p50, 0u);
      EXPECT_LE(r.latency.p50, r.latency.p99);
      EXPECT_LE(r.latency.p99, r.latency.max);
      EXPECT_GT(r.cpu_user_ns + r.cpu_sys_ns, 0u);
    }
  }
}

TEST(Runner, WeakScalingGrowsTheBatchWithTheWorkers) {
  RunConfig c = tiny();
  c.models = {"free_threads"};
  c.weak_scaling = true;
  const auto cells = run_suite(c);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].tasks_per_round, 8u);
  EXPECT_EQ(cells[1].tasks_per_round, 16u);
  EXPECT_EQ(cells[1].params.at("tasks"), "16");
  EXPECT_EQ(cells[1].status, "ok");
}

TEST(Runner, CalibrationRepeatsTheBatchToReachMinTime) {
  RunConfig c = tiny();
  c.models = {"serial"};
  c.params = {{"tasks", "2"}, {"units", "50"}};  // about 0.1 ms a batch
  c.min_time_s = 0.05;
  const auto cells = run_suite(c);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_GT(cells[0].rounds, 1u);
  for (const auto& r : cells[0].repetitions) {
    EXPECT_EQ(r.tasks, cells[0].rounds * 2);
    EXPECT_TRUE(r.verified);
  }
}

TEST(Runner, AHungCellIsRecordedAsTimedOutAndTheSuiteGoesOn) {
  RunConfig c = tiny();
  c.workloads = {"io.sleep", "cpu.spin"};
  c.models = {"free_threads"};
  c.workers = {2};
  c.suite_params["io.sleep"] = {{"tasks", "4"}, {"sleep_us", "600000000"}};  // ten minutes
  c.timeout_s = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  const auto cells = run_suite(c);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].status, "timed_out");
  EXPECT_NE(cells[0].error.find("--timeout"), std::string::npos);
  EXPECT_TRUE(cells[0].repetitions.empty());
  EXPECT_EQ(cells[1].status, "ok") << cells[1].error;
}

TEST(Runner, FailuresAreReportedAsFailedNotFast) {
  for (const char* fault : {"throw", "wrong_checksum"}) {
    SCOPED_TRACE(fault);
    RunConfig c = tiny();
    c.params = {{"fault", fault}};
    const auto cells = run_suite(c);
    for (const auto& cell : cells) {
      EXPECT_EQ(cell.status, "failed");
      ASSERT_FALSE(cell.repetitions.empty());
      const RepetitionResult& r = cell.repetitions[0];
      EXPECT_FALSE(r.verified);
      EXPECT_EQ(r.failed_tasks + r.wrong_checksums, 1u);
      EXPECT_EQ(r.tasks + r.failed_tasks, 8u);
      ASSERT_FALSE(r.failure_samples.empty());
      EXPECT_NE(r.failure_samples[0].find(std::string(fault) == "throw" ? "injected fault"
                                                                        : "checksum mismatch"),
                std::string::npos);
    }
    // A failed cell has no summary and no speedup: it must never look fast.
    const auto report = make_report(c, nlohmann::json::object(), cells, true);
    for (const auto& cell : report["results"]) {
      EXPECT_TRUE(cell["summary"]["throughput_per_s"].is_null());
      EXPECT_TRUE(cell["summary"]["speedup"].is_null());
    }
  }
}

// A model registered from outside the harness (as the Python module registers cpython.*): its
// workload list limits the matrix, its workload parameters sit between the suite's and the
// user's, and speedup_vs_serial divides by its own baseline.
TEST(Runner, RegisteredModelsTakePartInTheMatrix) {
  if (!find_model("test.serial_copy")) {
    ModelInfo copy = *find_model("serial");
    copy.name = "test.serial_copy";
    copy.workloads = {"cpu.spin"};
    copy.workload_params = {{"cpu.spin", {{"units", "7"}, {"tasks", "3"}}}};
    copy.serial_baseline = "test.serial_copy";
    register_model(copy);
  }
  EXPECT_THROW(register_model(*find_model("serial")), std::invalid_argument);
  RunConfig c = tiny();
  c.workloads = {"cpu.spin", "io.sleep"};
  c.models = {"serial", "test.serial_copy"};
  c.params["tasks"] = "5";  // the user's --param wins over the model's
  validate(c);
  const auto cells = run_suite(c);
  ASSERT_EQ(cells.size(), 3u);  // no io.sleep cell for the copy
  const CellResult& copy = cells[1];
  EXPECT_EQ(copy.model, "test.serial_copy");
  EXPECT_EQ(copy.params.at("units"), "7");  // the model's, over the smoke suite's 200
  EXPECT_EQ(copy.params.at("tasks"), "5");
  EXPECT_EQ(cells[0].params.at("units"), "200");
  EXPECT_EQ(copy.status, "ok");
  const auto report = make_report(c, nlohmann::json::object(), cells, true);
  EXPECT_DOUBLE_EQ(report["results"][1]["summary"]["speedup_vs_serial"].get<double>(), 1.0);
}

TEST(Config, RequestMirrorsTheCommandLine) {
  const RunConfig c = config_from_request(nlohmann::json{{"suite", "smoke"},
                                                         {"workloads", "cpu.spin,io.sleep"},
                                                         {"models", {"serial", "gil_threads"}},
                                                         {"workers", {1, 3}},
                                                         {"repetitions", "4"},
                                                         {"params", {{"tasks", 6}}},
                                                         {"switch_interval_us", 2000}});
  EXPECT_EQ(c.workloads, (std::vector<std::string>{"cpu.spin", "io.sleep"}));
  EXPECT_EQ(c.workers, (std::vector<int>{1, 3}));
  EXPECT_EQ(c.repetitions, 4);
  EXPECT_EQ(c.min_time_s, 0);  // workloads named: one batch per repetition
  EXPECT_EQ(c.params.at("tasks"), "6");
  EXPECT_EQ(c.params.at("switch_interval_us"), "2000");
  const RunConfig list_params = config_from_request(
      nlohmann::json{{"workloads", {"cpu.spin"}}, {"params", {"tasks=2", "units=3"}}});
  EXPECT_EQ(list_params.params.at("units"), "3");
  EXPECT_EQ(config_from_request(nlohmann::json::object()).suite, "quick");
}

TEST(Config, BadRequestsNameTheProblem) {
  auto bad = [](const nlohmann::json& req, const std::string& fragment) {
    try {
      config_from_request(req);
      ADD_FAILURE() << req.dump() << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  bad(nlohmann::json::array(), "expected an object");
  bad({{"bogus", 1}}, "unknown key 'bogus'");
  bad({{"workers", {0}}}, "--workers");
  bad({{"workers", "1,,2"}}, "empty item");
  bad({{"workers", nlohmann::json::array()}}, "empty list");
  bad({{"repetitions", "x"}}, "--repetitions");
  bad({{"min_time", -1}}, "--min-time");
  bad({{"timeout", 0}}, "--timeout");
  bad({{"scaling", "diagonal"}}, "--scaling");
  bad({{"params", {"units"}}}, "key=value");
  bad({{"params", 3}}, "--param");
  bad({{"models", {{{"a", 1}}}}}, "--models");
  bad({{"suite", "huge"}}, "unknown suite");
}

}  // namespace
}  // namespace concbench
