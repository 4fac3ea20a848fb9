// The runner's matrix, calibration, verification and timeout handling.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>

#include "concbench/checksum.hpp"
#include "concbench/config.hpp"
#include "concbench/kernels.hpp"
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
  EXPECT_GE(cells[0].calibration_trials, 1);
  for (const auto& r : cells[0].repetitions) {
    EXPECT_EQ(r.tasks, r.rounds * 2);
    EXPECT_TRUE(r.verified);
    // Calibration is checked, not guessed: a repetition shorter than min-time is retaken with
    // more rounds, so every kept one lasts at least min-time (however busy the machine is,
    // a busy machine only makes a batch longer).
    EXPECT_GE(r.wall_ns, 50'000'000u);
    EXPECT_FALSE(r.short_of_min_time);
  }
}

// The cheapest task there is, at several worker counts: a warm-up of one batch says nothing
// about how many rounds make min-time, which is what used to leave such cells 4 to 10x short.
TEST(Runner, EveryRepetitionOfADispatchCellLastsMinTime) {
  RunConfig c = tiny();
  c.workloads = {"overhead.noop"};
  c.models = {"serial", "thread_pool"};
  c.workers = {1, 2};
  c.params = {{"tasks", "100"}};
  c.min_time_s = 0.03;
  c.repetitions = 3;
  for (const auto& cell : run_suite(c)) {
    SCOPED_TRACE(cell.model + "/" + std::to_string(cell.workers));
    ASSERT_EQ(cell.status, "ok") << cell.error;
    for (const auto& r : cell.repetitions) {
      EXPECT_GE(r.wall_ns, 30'000'000u);
      EXPECT_LE(r.wall_ns, r.outer_wall_ns);  // the model's span lies within run()
      // Latency is sampled, a few thousand per batch, and says so.
      EXPECT_GT(r.latency_stride, 1u);
      EXPECT_LE(r.latency.n, r.tasks / r.latency_stride + 1);
      EXPECT_GT(r.instrumentation_ns_per_item, 0);
    }
  }
}

TEST(Runner, InterleavedRepetitionsVisitEveryCellInTurn) {
  RunConfig c = tiny();
  c.interleave = true;
  c.repetitions = 3;
  c.min_time_s = 0.005;
  std::vector<size_t> order;
  const auto cells =
      run_suite(c, {}, [&](const CellSpec&, size_t index, size_t, const std::string& p) {
        if (p.rfind("rep ", 0) == 0) order.push_back(index);
      });
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
  for (const auto& cell : cells) {
    EXPECT_EQ(cell.status, "ok") << cell.error;
    ASSERT_EQ(cell.repetitions.size(), 3u);
    for (const auto& r : cell.repetitions) EXPECT_EQ(r.rounds, cell.rounds);  // calibrated once
  }
}

// Models that do less than the work and try to look fast: each must fail verification.
class LazyModel : public Model {
 public:
  enum class Kind { memoize, sleep_short };
  explicit LazyModel(Kind k) : kind_(k) {}
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
  }
  BatchResult run(const Batch& batch) override {
    BatchResult r = BatchResult::for_batch(batch);
    ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), 0);
    io_->begin_batch();
    for (uint64_t k = 0; k < batch.items(); ++k) {
      const Task& t = (*batch.tasks)[k % batch.tasks->size()];
      if (kind_ == Kind::memoize) {
        // Runs each task once, for real, and replays that result for every later item.
        auto it = cache_.find(&t);
        if (it == cache_.end())
          it = cache_.emplace(&t, execute_task(t, ctx, batch.item_nonce(k)).checksum).first;
        r.checksums[k] = it->second;
      } else {
        // Does every step but sleeps: it knows what a sleep step returns and skips the wait.
        uint64_t h = task_checksum_start(t);
        for (size_t i = 0; i < t.steps.size(); ++i)
          h = fold(h, t.steps[i].kind == StepKind::sleep
                          ? t.steps[i].duration_ns
                          : run_cpu_step(t.steps[i], t.seed, i, ctx));
        r.checksums[k] = seal(h, batch.item_nonce(k));
      }
      r.done[k] = 1;
    }
    r.observations = io_->end_batch();
    return r;
  }
  void cancel() override {}

 private:
  Kind kind_;
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
  std::map<const Task*, uint64_t> cache_;  // persists across batches, as a cache would
};

TEST(Runner, LazyModelsFailVerification) {
  for (auto [name, kind] : {std::pair{"test.lazy_memoize", LazyModel::Kind::memoize},
                            std::pair{"test.lazy_sleep_short", LazyModel::Kind::sleep_short}}) {
    if (!find_model(name)) {
      ModelInfo info;
      info.name = name;
      info.single_worker = true;
      info.create = [kind = kind] { return std::make_unique<LazyModel>(kind); };
      register_model(info);
    }
  }
  RunConfig c = tiny();
  c.workloads = {"cpu.spin", "io.sleep"};
  c.models = {"serial", "test.lazy_memoize", "test.lazy_sleep_short"};
  c.suite_params["io.sleep"] = {{"tasks", "4"}, {"sleep_us", "2000"}};
  c.min_time_s = 0.02;  // several rounds: the memoizer replays round 1's results after it
  std::map<std::string, std::string> status;
  for (const auto& cell : run_suite(c)) {
    SCOPED_TRACE(cell.workload + " " + cell.model);
    status[cell.workload + " " + cell.model] = cell.status;
    if (cell.status != "ok") {
      EXPECT_FALSE(cell.error.empty());
    }
  }
  EXPECT_EQ(status["cpu.spin serial"], "ok");
  EXPECT_EQ(status["io.sleep serial"], "ok");
  EXPECT_EQ(status["cpu.spin test.lazy_memoize"], "failed");
  EXPECT_EQ(status["io.sleep test.lazy_memoize"], "failed");
  EXPECT_EQ(status["io.sleep test.lazy_sleep_short"], "failed");
  EXPECT_EQ(status["cpu.spin test.lazy_sleep_short"], "ok");  // nothing to skip there
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

namespace concbench {
namespace {

// A sweep multiplies only the cells of the workloads and models that declare its key: units
// (cpu.spin's) times switch_interval_us (gil_threads') for cpu.spin under gil_threads, one of
// them elsewhere, neither for io.sleep under serial.
TEST(Runner, SweepsMultiplyOnlyTheCellsThatDeclareTheirKeys) {
  RunConfig c = suite_config("smoke");
  c.workloads = {"cpu.spin", "io.sleep"};
  c.models = {"serial", "gil_threads"};
  c.workers = {1};
  c.params = {{"units", "10,20"}, {"switch_interval_us", "1000,2000"}};
  validate(c);
  const std::vector<CellSpec> cells = expand_matrix(c);
  std::map<std::string, int> count;
  for (const CellSpec& s : cells) ++count[s.workload + "/" + s.model];
  EXPECT_EQ(count["cpu.spin/serial"], 2);
  EXPECT_EQ(count["cpu.spin/gil_threads"], 4);
  EXPECT_EQ(count["io.sleep/serial"], 1);
  EXPECT_EQ(count["io.sleep/gil_threads"], 2);
  EXPECT_EQ(cells.size(), 9u);
  for (const CellSpec& s : cells)
    if (s.model == "serial") {
      EXPECT_EQ(s.sweep.count("switch_interval_us"), 0u);
    }
}

}  // namespace
}  // namespace concbench
