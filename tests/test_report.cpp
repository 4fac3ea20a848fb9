// The report's schema, speedups, Google Benchmark shape and atomic writing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "concbench/machine.hpp"
#include "concbench/report.hpp"

namespace concbench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

CellResult fake_cell(const std::string& model, int workers, double per_task_ns) {
  CellResult c;
  c.workload = "cpu.spin";
  c.model = model;
  c.workers = workers;
  c.params = {{"tasks", "10"}};
  c.tasks_per_round = 10;
  for (int i = 0; i < 3; ++i) {
    RepetitionResult r;
    r.tasks = 10;
    r.wall_ns = static_cast<uint64_t>(per_task_ns * 10 * (1 + 0.01 * i));
    r.throughput_per_s = 10 * 1e9 / static_cast<double>(r.wall_ns);
    r.verified = true;
    r.latency = latency_summary({100, 200, 300});
    CounterValues cv;
    cv.set(Counter::context_switches, 4);
    r.counters = cv;  // everything else unavailable
    c.repetitions.push_back(r);
  }
  return c;
}

TEST(Report, SchemaRoundTripsAndSpeedupsAreComputed) {
  RunConfig cfg = suite_config("smoke");
  std::vector<CellResult> cells = {fake_cell("serial", 1, 1000), fake_cell("free_threads", 1, 1100),
                                   fake_cell("free_threads", 2, 550)};
  const json report = json::parse(make_report(cfg, json{{"hostname", "h"}}, cells, true).dump());
  EXPECT_EQ(report["schema_version"], kSchemaVersion);
  EXPECT_TRUE(report["complete"]);
  ASSERT_EQ(report["results"].size(), 3u);
  const json& c = report["results"][2];
  for (const char* k :
       {"workload", "model", "workers", "params", "repetitions", "summary", "status"})
    EXPECT_TRUE(c.contains(k)) << k;
  const json& r = c["repetitions"][0];
  for (const char* k : {"wall_ns", "cpu_user_ns", "cpu_sys_ns", "tasks", "throughput_per_s",
                        "task_latency_ns", "counters", "metrics", "model_metrics", "verified"})
    EXPECT_TRUE(r.contains(k)) << k;
  for (const char* k :
       {"context_switches", "voluntary_context_switches", "involuntary_context_switches",
        "cpu_migrations", "page_faults", "cycles", "instructions", "cache_references",
        "cache_misses", "l1d_load_misses", "llc_load_misses"})
    EXPECT_TRUE(r["counters"].contains(k)) << k;
  EXPECT_EQ(r["counters"]["context_switches"], 4);
  EXPECT_TRUE(r["counters"]["cache_misses"].is_null());  // unavailable is null, never 0
  EXPECT_EQ(r["task_latency_ns"]["p99"], 300);
  for (const char* k : {"median", "mean", "stddev", "cv", "min", "max", "ci95"})
    EXPECT_TRUE(c["summary"]["wall_ns"].contains(k)) << k;
  EXPECT_NEAR(c["summary"]["speedup"].get<double>(), 2.0, 1e-9);
  EXPECT_NEAR(c["summary"]["speedup_vs_serial"].get<double>(), 1000.0 / 550, 1e-9);
  EXPECT_NEAR(report["results"][0]["summary"]["speedup"].get<double>(), 1.0, 1e-9);
}

// The same long tail is a convoy behind a lock and a thread waiting for a CPU where the model
// shares nothing else: only the first is flagged, and both say the tail was long.
TEST(Report, AConvoyIsFlaggedOnlyWhereThereIsALockToWaitBehind) {
  RunConfig cfg = suite_config("smoke");
  std::vector<CellResult> cells;
  for (const char* model : {"gil_threads", "free_threads", "async"}) {
    CellResult c = fake_cell(model, 2, 1000);
    c.workload = "latency.echo_under_load";
    for (RepetitionResult& r : c.repetitions)
      r.metrics = {{"rtt_p50_ns", 4e3}, {"rtt_p99_ns", 3.6e6}};
    cells.push_back(c);
  }
  CellResult fast = fake_cell("thread_pool", 2, 1000);
  fast.workload = "latency.echo_under_load";
  for (RepetitionResult& r : fast.repetitions)
    r.metrics = {{"rtt_p50_ns", 4e3}, {"rtt_p99_ns", 9e3}};
  cells.push_back(fast);
  const json rep = make_report(cfg, json::object(), cells, true);
  const json& gil = rep["results"][0]["convoy"];
  const json& free = rep["results"][1]["convoy"];
  const json& loop = rep["results"][2]["convoy"];
  const json& pool = rep["results"][3]["convoy"];
  EXPECT_TRUE(gil["flag"].get<bool>()) << gil.dump();
  EXPECT_TRUE(loop["flag"].get<bool>()) << loop.dump();
  EXPECT_FALSE(free["flag"].get<bool>()) << free.dump();
  EXPECT_TRUE(free["slow_tail"].get<bool>()) << free.dump();
  EXPECT_TRUE(free["shares_only_cpus"].get<bool>()) << free.dump();
  EXPECT_FALSE(pool["slow_tail"].get<bool>()) << pool.dump();
  EXPECT_FALSE(pool["flag"].get<bool>()) << pool.dump();
}

// bench_runner's partial reports: a cell's speedup is filled in when its base arrives after it,
// and a write leaves every cell in the builder for the next one.
TEST(Report, TheBuilderWritesWhatItHoldsAndFillsSpeedupsFromLaterCells) {
  RunConfig cfg = suite_config("smoke");
  ReportBuilder b(cfg, json{{"hostname", "h"}});
  const fs::path path =
      fs::temp_directory_path() / ("concbench-builder-" + std::to_string(getpid()) + ".json");
  b.add(fake_cell("free_threads", 2, 550));
  b.write(path.string(), false);
  json first = json::parse(std::ifstream(path));
  EXPECT_EQ(first, b.report(false));
  EXPECT_FALSE(first["complete"]);
  ASSERT_EQ(first["results"].size(), 1u);
  EXPECT_TRUE(first["results"][0]["summary"]["speedup"].is_null());
  b.add(fake_cell("free_threads", 1, 1100));
  b.add(fake_cell("serial", 1, 1000));
  b.write(path.string(), false);  // the first cell's text redone: its bases arrived
  EXPECT_EQ(json::parse(std::ifstream(path)), b.report(false));
  b.write(path.string(), true);
  const json last = json::parse(std::ifstream(path));
  fs::remove(path);
  EXPECT_TRUE(last["complete"]);
  ASSERT_EQ(last["results"].size(), 3u);
  EXPECT_EQ(last["benchmarks"].size(), 3u * 6u);
  EXPECT_NEAR(last["results"][0]["summary"]["speedup"].get<double>(), 2.0, 1e-9);
  EXPECT_NEAR(last["results"][0]["summary"]["speedup_vs_serial"].get<double>(), 1000.0 / 550, 1e-9);
  EXPECT_EQ(last, b.report(true));  // the write moved the cells back
  validate_report(last);
}

TEST(Report, BenchmarksHaveGoogleBenchmarksShape) {
  RunConfig cfg = suite_config("smoke");
  const json report = make_report(cfg, json::object(), {fake_cell("free_threads", 2, 500)}, true);
  const json& b = report["benchmarks"];
  ASSERT_EQ(b.size(), 3u + 3u);  // three iterations, then mean, median, stddev
  for (const json& e : b) {
    for (const char* k : {"name", "run_name", "run_type", "repetitions", "real_time", "cpu_time",
                          "time_unit", "iterations", "threads"})
      EXPECT_TRUE(e.contains(k)) << k;
    EXPECT_EQ(e["run_name"], "cpu.spin/free_threads/workers:2");
    EXPECT_EQ(e["time_unit"], "ns");
  }
  EXPECT_EQ(b[0]["run_type"], "iteration");
  EXPECT_EQ(b[0]["repetition_index"], 0);
  EXPECT_NEAR(b[0]["real_time"].get<double>(), 500, 1e-9);
  EXPECT_EQ(b[4]["aggregate_name"], "median");
}

TEST(Report, WritesAtomicallyAndLeavesNoTemporaryFiles) {
  const fs::path dir = fs::temp_directory_path() / ("concbench-report-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "r.json").string();
  write_report_atomic(path, json{{"a", 1}});
  write_report_atomic(path, json{{"a", 2}});
  std::ifstream in(path);
  EXPECT_EQ(json::parse(in)["a"], 2);
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  // A directory that vanished: the error says so and nothing is left behind.
  EXPECT_THROW(write_report_atomic((dir / "missing" / "r.json").string(), json::object()),
               std::runtime_error);
  fs::remove_all(dir);
}

TEST(Report, CheckWritableNamesTheProblem) {
  EXPECT_THROW(check_writable(fs::temp_directory_path().string()), UsageError);
  EXPECT_THROW(check_writable("/nonexistent-dir/x.json"), UsageError);
  EXPECT_THROW(check_writable(""), UsageError);
  EXPECT_NO_THROW(check_writable((fs::temp_directory_path() / "ok.json").string()));
  if (geteuid() != 0) {
    EXPECT_THROW(check_writable("/proc/x.json"), UsageError);
  }
  EXPECT_THROW(check_writable("/proc/x.json"), UsageError);  // procfs refuses even root
}

TEST(Report, TableListsEveryCell) {
  RunConfig cfg = suite_config("smoke");
  const json report = make_report(
      cfg, json::object(), {fake_cell("serial", 1, 1000), fake_cell("free_threads", 2, 500)}, true);
  const std::string t = format_table(report);
  EXPECT_NE(t.find("serial"), std::string::npos);
  EXPECT_NE(t.find("free_threads"), std::string::npos);
  EXPECT_NE(t.find("2.00x"), std::string::npos);
}

}  // namespace
}  // namespace concbench
