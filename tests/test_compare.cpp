// Reading reports back (validate_report, load_report) and comparing them (compare_reports), on
// synthetic reports whose numbers are chosen, so every verdict below is known in advance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "concbench/compare.hpp"
#include "concbench/report.hpp"

namespace concbench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kTasks = 10;

// A cell whose repetitions took `wall_ns` each for kTasks tasks.
json cell(const std::string& workload, const std::string& model, int workers,
          const std::vector<double>& wall_ns, const std::string& status = "ok",
          json params = json::object()) {
  json reps = json::array();
  for (double w : wall_ns)
    reps.push_back({{"wall_ns", w},
                    {"cpu_user_ns", w},
                    {"cpu_sys_ns", 0},
                    {"tasks", kTasks},
                    {"throughput_per_s", kTasks / (w / 1e9)},
                    {"task_latency_ns", {{"p50", 1}, {"p99", 2}, {"max", 3}}},
                    {"counters", {{"context_switches", 4}, {"cycles", nullptr}}},
                    {"metrics", json::object()},
                    {"verified", status == "ok"}});
  const json stat = {{"n", 1},   {"median", 1}, {"mean", 1},
                     {"min", 1}, {"max", 1},    {"ci95", {1, 1}}};
  return {{"workload", workload},
          {"model", model},
          {"workers", workers},
          {"params", params},
          {"status", status},
          {"repetitions", reps},
          {"summary",
           {{"wall_ns", stat},
            {"wall_ns_per_task", stat},
            {"throughput_per_s", stat},
            {"speedup", nullptr},
            {"speedup_vs_serial", nullptr}}}};
}

json report(std::vector<json> cells, int cpus = 2) {
  return {{"schema_version", kSchemaVersion},
          {"generator", "concbench bench_runner"},
          {"complete", true},
          {"config", {{"suite", "quick"}, {"scaling", "strong"}, {"seed", 1}}},
          {"context",
           {{"hostname", "box"},
            {"cpu_model", "Test CPU"},
            {"logical_cpus", cpus},
            {"cpus_allowed", cpus},
            {"counters_unavailable", {{"cycles", "no PMU"}}}}},
          {"results", cells},
          {"benchmarks", json::array()}};
}

std::vector<double> scaled(std::vector<double> v, double f) {
  for (double& x : v) x *= f;
  return v;
}

const std::vector<double> kFive = {1000, 1010, 990, 1020, 980};

json compare(const json& a, const json& b, CompareOptions opt = {}) {
  return compare_reports({{"base.json", a}, {"new.json", b}}, opt);
}

const json& only_cell(const json& cmp) {
  return cmp["comparisons"][0]["cells"][0];
}

TEST(ValidateReport, AcceptsAWellFormedReport) {
  EXPECT_NO_THROW(validate_report(report({cell("cpu.spin", "serial", 1, kFive)})));
}

struct Bad {
  const char* name;
  std::function<void(json&)> mutate;
  const char* message;  // a substring of the one-line error
};

class ValidateRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(ValidateRejects, NamesTheProblem) {
  json r = report({cell("cpu.spin", "serial", 1, kFive), cell("cpu.spin", "serial", 2, kFive)});
  GetParam().mutate(r);
  try {
    validate_report(r);
    FAIL() << "accepted";
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().message), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schema, ValidateRejects,
    ::testing::Values(
        Bad{"array", [](json& r) { r = json::array(); }, "top level is not an object"},
        Bad{"no_version", [](json& r) { r.erase("schema_version"); }, "no schema_version"},
        Bad{"gbench",
            [](json& r) {
              r = {{"context", json::object()}, {"benchmarks", json::array()}};
            },
            "a Google Benchmark report"},
        Bad{"newer", [](json& r) { r["schema_version"] = 2; }, "schema version 2"},
        Bad{"version_text", [](json& r) { r["schema_version"] = "1"; }, "expected an integer"},
        Bad{"generator", [](json& r) { r["generator"] = "pytest-benchmark"; }, "is not concbench"},
        Bad{"no_results", [](json& r) { r.erase("results"); }, "missing field 'results'"},
        Bad{"results_object", [](json& r) { r["results"] = json::object(); },
            "results: expected an array"},
        Bad{"wall_text", [](json& r) { r["results"][1]["repetitions"][3]["wall_ns"] = "fast"; },
            "results[1].repetitions[3].wall_ns: expected a number"},
        Bad{"wall_negative", [](json& r) { r["results"][0]["repetitions"][0]["wall_ns"] = -1; },
            "negative"},
        Bad{"tasks_fraction", [](json& r) { r["results"][0]["repetitions"][0]["tasks"] = 1.5; },
            "tasks: expected an integer"},
        Bad{"workers_zero", [](json& r) { r["results"][0]["workers"] = 0; }, "at least 1"},
        Bad{"no_model", [](json& r) { r["results"][0].erase("model"); }, "missing field 'model'"},
        Bad{"counter_text",
            [](json& r) { r["results"][0]["repetitions"][0]["counters"]["cycles"] = "n/a"; },
            "counters.cycles"},
        Bad{"summary_shape", [](json& r) { r["results"][0]["summary"]["wall_ns_per_task"] = 3; },
            "expected an object or null"},
        Bad{"duplicate", [](json& r) { r["results"][1]["workers"] = 1; }, "a second cell"},
        Bad{"ci95_shape",
            [](json& r) { r["results"][0]["summary"]["throughput_per_s"]["ci95"] = {1}; },
            "ci95: expected [low, high]"}),
    [](const auto& info) { return std::string(info.param.name); });

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("concbench-compare-" + std::to_string(getpid()));
  fs::create_directories(d);
  return d / name;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(LoadReport, TruncatedEmptyAndMissingFilesAreOneLineErrors) {
  const std::string text = report({cell("cpu.spin", "serial", 1, kFive)}).dump(2);
  write(scratch("whole.json"), text);
  EXPECT_NO_THROW(load_report(scratch("whole.json").string()));
  write(scratch("half.json"), text.substr(0, text.size() / 2));
  try {
    load_report(scratch("half.json").string());
    FAIL();
  } catch (const ReportError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(scratch("half.json").string(), 0), 0u) << m;
    EXPECT_NE(m.find("truncated"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  write(scratch("empty.json"), "\n");
  EXPECT_THROW(load_report(scratch("empty.json").string()), ReportError);
  EXPECT_THROW(load_report(scratch("absent.json").string()), ReportError);
  write(scratch("binary.json"), std::string("{\"a\": \"\xff\xfe\"}"));
  EXPECT_THROW(load_report(scratch("binary.json").string()), ReportError);
  fs::remove_all(scratch("").parent_path());
}

TEST(Compare, AReportAgainstItselfChangesNothing) {
  const json r = report({cell("cpu.spin", "serial", 1, kFive)});
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(r, r, opt);
  const json& c = only_cell(cmp);
  EXPECT_EQ(c["state"], "compared");
  EXPECT_DOUBLE_EQ(c["time"]["ratio"].get<double>(), 1.0);
  EXPECT_EQ(c["significance"], "not significant");
  EXPECT_TRUE(cmp["comparisons"][0]["context_diff"].empty());
  EXPECT_EQ(comparison_exit_code(cmp), 0);
}

TEST(Compare, ASignificantSlowdownBeyondTheThresholdGates) {
  const json a = report({cell("cpu.spin", "free_threads", 2, kFive)});
  const json b = report({cell("cpu.spin", "free_threads", 2, scaled(kFive, 2))});
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  json cmp = compare(a, b, opt);
  const json& c = only_cell(cmp);
  EXPECT_EQ(c["significance"], "significant");
  EXPECT_NEAR(c["change_pct"].get<double>(), 100, 1e-9);
  EXPECT_NEAR(c["throughput"]["ratio"].get<double>(), 0.5, 1e-9);
  EXPECT_NEAR(c["test"]["p_value"].get<double>(), 2.0 / 252, 1e-12);
  EXPECT_TRUE(c["gate"]);
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  EXPECT_EQ(cmp["comparisons"][0]["gating"][0], "cpu.spin/free_threads/workers:2");

  opt.fail_on_regression_pct = 150;  // a 100% slowdown is inside a 150% threshold
  EXPECT_EQ(comparison_exit_code(compare(a, b, opt)), 0);
  EXPECT_EQ(comparison_exit_code(compare(a, b)), 0);  // no gate, no failure
  opt.fail_on_regression_pct = 10;
  EXPECT_EQ(comparison_exit_code(compare(b, a, opt)), 0);  // faster is not a regression
}

TEST(Compare, TwoRepetitionsAreTooFewToCallAnything) {
  const json a = report({cell("cpu.spin", "serial", 1, {1000, 1010})});
  const json b = report({cell("cpu.spin", "serial", 1, {10000, 10100})});
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(a, b, opt);
  EXPECT_EQ(only_cell(cmp)["significance"], "too few repetitions");
  EXPECT_NEAR(only_cell(cmp)["change_pct"].get<double>(), 900, 1e-6);
  EXPECT_EQ(comparison_exit_code(cmp), 0);
}

TEST(Compare, ACellThatStopsVerifyingGates) {
  const json a = report({cell("cpu.spin", "serial", 1, kFive)});
  const json b = report({cell("cpu.spin", "serial", 1, kFive, "wrong_result")});
  CompareOptions opt;
  EXPECT_EQ(only_cell(compare(a, b, opt))["state"], "failed_in_new");
  EXPECT_EQ(comparison_exit_code(compare(a, b, opt)), 0);
  opt.fail_on_regression_pct = 1000;
  EXPECT_EQ(comparison_exit_code(compare(a, b, opt)), 1);
  EXPECT_EQ(only_cell(compare(b, a, opt))["state"], "failed_in_base");
  EXPECT_EQ(comparison_exit_code(compare(b, a, opt)), 0);
}

// Against a BASE from another machine: a tenfold slowdown passes, a cell that stopped verifying
// or vanished does not.
TEST(Compare, FailOnBrokenGatesOnFailingOrMissingCellsNotOnTimings) {
  const json a =
      report({cell("cpu.spin", "serial", 1, kFive), cell("io.sleep", "async", 1, kFive)});
  const json slow = report(
      {cell("cpu.spin", "serial", 1, scaled(kFive, 10)), cell("io.sleep", "async", 1, kFive)});
  CompareOptions opt;
  opt.fail_on_broken = true;
  json cmp = compare(a, slow, opt);
  EXPECT_EQ(cmp["comparisons"][0]["cells"][0]["significance"], "significant");
  EXPECT_EQ(comparison_exit_code(cmp), 0);
  EXPECT_NE(format_comparison(cmp, CompareFormat::text).find("timings not gated"),
            std::string::npos);

  const json failing = report(
      {cell("cpu.spin", "serial", 1, kFive, "wrong_result"), cell("io.sleep", "async", 1, kFive)});
  cmp = compare(a, failing, opt);
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  EXPECT_EQ(cmp["comparisons"][0]["gating"][0], "cpu.spin/serial/workers:1");

  const json fewer = report({cell("cpu.spin", "serial", 1, kFive)});
  cmp = compare(a, fewer, opt);
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  EXPECT_EQ(cmp["comparisons"][0]["gating"][0], "io.sleep/async/workers:1");
  EXPECT_EQ(comparison_exit_code(compare(fewer, a, opt)), 0);  // a cell only in NEW

  opt.fail_on_regression_pct = 100;  // both: the timing gate as well
  EXPECT_EQ(comparison_exit_code(compare(a, slow, opt)), 1);
}

TEST(Compare, UnmatchedCellsAreListedNotCompared) {
  const json a = report({cell("cpu.spin", "serial", 1, kFive), cell("io.sleep", "async", 1, kFive),
                         cell("cpu.sha256", "serial", 1, kFive, "ok", {{"units", "8"}})});
  const json b = report({cell("cpu.spin", "serial", 1, kFive), cell("io.sleep", "async", 2, kFive),
                         cell("cpu.sha256", "serial", 1, kFive, "ok", {{"units", "16"}})});
  const json cmp = compare(a, b);
  std::map<std::string, std::string> states;
  for (const json& c : cmp["comparisons"][0]["cells"])
    states[c["workload"].get<std::string>() + "/" + c["workers"].dump()] = c["state"];
  EXPECT_EQ(states["cpu.spin/1"], "compared");
  EXPECT_EQ(states["io.sleep/1"], "only_in_base");
  EXPECT_EQ(states["io.sleep/2"], "only_in_new");
  EXPECT_EQ(states["cpu.sha256/1"], "params_differ");
  EXPECT_EQ(cmp["comparisons"][0]["geomean"]["cells"], 1);
}

// The measurement: "missing in new", then "no cell newly failing", exit 0. A gate that
// passes when a cell vanished passes a change that deleted what it guards.
TEST(Compare, ACellMissingFromNewGates) {
  const json a =
      report({cell("cpu.spin", "serial", 1, kFive), cell("cpu.spin", "free_threads", 2, kFive)});
  const json b = report({cell("cpu.spin", "serial", 1, kFive)});
  CompareOptions opt;
  EXPECT_EQ(comparison_exit_code(compare(a, b, opt)), 0);  // no gate, no failure
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(a, b, opt);
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  ASSERT_EQ(cmp["comparisons"][0]["gating"].size(), 1u);
  EXPECT_EQ(cmp["comparisons"][0]["gating"][0], "cpu.spin/free_threads/workers:2");
  EXPECT_EQ(cmp["comparisons"][0]["cells"][1]["state"], "only_in_base");
  EXPECT_EQ(cmp["comparisons"][0]["cells"][1]["gate_reason"], "missing in new");
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("gate: MISSING cpu.spin/free_threads/workers:2 (in BASE, not in NEW)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("no cell"), std::string::npos) << text;

  // A cell only in NEW is listed by name and does not gate.
  const json back = compare(b, a, opt);
  EXPECT_EQ(comparison_exit_code(back), 0);
  const std::string back_text = format_comparison(back, CompareFormat::text);
  EXPECT_NE(back_text.find("1 cell(s) only in NEW, not compared (they do not gate): "
                           "cpu.spin/free_threads/workers:2"),
            std::string::npos)
      << back_text;
}

// Two cells that differ only in parameters are two cells: keyed without them, one silently
// took the other's place.
TEST(Compare, CellsThatDifferOnlyInParametersAreMatchedByThem) {
  const json p8 = {{"units", "8"}}, p16 = {{"units", "16"}};
  const json a = report({cell("cpu.sha256", "serial", 1, kFive, "ok", p8),
                         cell("cpu.sha256", "serial", 1, scaled(kFive, 2), "ok", p16)});
  // NEW lists them the other way round, and the units=16 cell got 50% slower.
  const json b = report({cell("cpu.sha256", "serial", 1, scaled(kFive, 3), "ok", p16),
                         cell("cpu.sha256", "serial", 1, kFive, "ok", p8)});
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(a, b, opt);
  const json& cells = cmp["comparisons"][0]["cells"];
  ASSERT_EQ(cells.size(), 2u);
  for (const json& c : cells) EXPECT_EQ(c["state"], "compared") << c.dump();
  EXPECT_EQ(cells[0]["params"], p8);
  EXPECT_NEAR(cells[0]["time"]["ratio"].get<double>(), 1.0, 1e-9);
  EXPECT_EQ(cells[1]["params"], p16);
  EXPECT_NEAR(cells[1]["time"]["ratio"].get<double>(), 1.5, 1e-9);
  ASSERT_EQ(cmp["comparisons"][0]["gating"].size(), 1u);
  EXPECT_EQ(cmp["comparisons"][0]["gating"][0], "cpu.sha256/serial/workers:1 {units=16}");
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("cpu.sha256 {units=8}"), std::string::npos) << text;
  EXPECT_NE(text.find("cpu.sha256 {units=16}"), std::string::npos) << text;

  // Drop one of them from NEW: it is missing, and it gates.
  const json c = report({cell("cpu.sha256", "serial", 1, kFive, "ok", p8)});
  const json gone = compare(a, c, opt);
  EXPECT_EQ(comparison_exit_code(gone), 1);
  ASSERT_EQ(gone["comparisons"][0]["cells"].size(), 2u);
  EXPECT_EQ(gone["comparisons"][0]["cells"][0]["state"], "compared");
  EXPECT_EQ(gone["comparisons"][0]["cells"][1]["state"], "only_in_base");
  EXPECT_EQ(gone["comparisons"][0]["gating"][0], "cpu.sha256/serial/workers:1 {units=16}");
}

// A cell of BASE that NEW ran only with other parameters was not measured again: it gates like
// a missing one, and says what changed.
TEST(Compare, ACellRunWithOtherParametersGatesAsMissing) {
  const json a = report({cell("cpu.sha256", "serial", 1, kFive, "ok", {{"units", "8"}})});
  const json b = report({cell("cpu.sha256", "serial", 1, kFive, "ok", {{"units", "16"}})});
  EXPECT_EQ(comparison_exit_code(compare(a, b)), 0);
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(a, b, opt);
  EXPECT_EQ(only_cell(cmp)["state"], "params_differ");
  EXPECT_EQ(cmp["comparisons"][0]["cells"].size(), 1u);  // paired, not also "only in new"
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("MISSING: params differ: units=8->16"), std::string::npos) << text;
  EXPECT_NE(text.find("gate: MISSING cpu.sha256/serial/workers:1 {units=8} (NEW ran it with "
                      "{units=16})"),
            std::string::npos)
      << text;
}

// A parameter added to a workload after BASE was written: BASE lacks it, NEW has it at the
// default that keeps the old behaviour. The same measurement, compared, with the key named; at
// any other value it is another cell, as above. Two parameter sets of one workload (no unique
// pairing by workload, model and workers) match up the same way.
TEST(Compare, AParameterAnOldReportLacksMatchesItsDefault) {
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json old8 = {{"units", "8"}}, old16 = {{"units", "16"}};
  const json a = report({cell("cpu.sha256", "serial", 1, kFive, "ok", old8),
                         cell("cpu.sha256", "serial", 1, kFive, "ok", old16)});
  json new8 = old8, new16 = old16;
  new8["fault"] = "none";  // cpu.sha256's declared default
  new16["fault"] = "none";
  const json b = report({cell("cpu.sha256", "serial", 1, kFive, "ok", new8),
                         cell("cpu.sha256", "serial", 1, kFive, "ok", new16)});
  const json cmp = compare(a, b, opt);
  ASSERT_EQ(cmp["comparisons"][0]["cells"].size(), 2u);
  for (const json& c : cmp["comparisons"][0]["cells"]) {
    EXPECT_EQ(c["state"], "compared") << c.dump();
    EXPECT_EQ(c["params_at_default"], json({{"fault", "none"}})) << c.dump();
  }
  EXPECT_EQ(comparison_exit_code(cmp), 0);

  json thrown = old8;
  thrown["fault"] = "throw";
  const json c = report({cell("cpu.sha256", "serial", 1, kFive, "ok", thrown)});
  const json a8 = report({cell("cpu.sha256", "serial", 1, kFive, "ok", old8)});
  const json differs = compare(a8, c, opt);
  EXPECT_EQ(only_cell(differs)["state"], "params_differ");
  EXPECT_EQ(comparison_exit_code(differs), 1);
  // A key neither the workload nor the model declares has no default to match.
  json unknown = old8;
  unknown["no_such_param"] = "none";
  EXPECT_EQ(only_cell(compare(a8, report({cell("cpu.sha256", "serial", 1, kFive, "ok", unknown)}),
                              opt))["state"],
            "params_differ");
}

TEST(Compare, ACellWithNothingVerifiedInNewGates) {
  const json a = report({cell("cpu.spin", "serial", 1, kFive)});
  json b = a;
  for (json& rep : b["results"][0]["repetitions"]) rep["verified"] = false;
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json cmp = compare(a, b, opt);
  EXPECT_EQ(only_cell(cmp)["state"], "no_verified_repetitions");
  EXPECT_EQ(only_cell(cmp)["gate_reason"], "nothing verified in new");
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  EXPECT_EQ(comparison_exit_code(compare(b, a, opt)), 0);  // nothing to lose in BASE
}

TEST(Compare, GeometricMeanOverCells) {
  const json a =
      report({cell("cpu.spin", "serial", 1, kFive), cell("io.sleep", "serial", 1, kFive)});
  const json b = report({cell("cpu.spin", "serial", 1, scaled(kFive, 2)),
                         cell("io.sleep", "serial", 1, scaled(kFive, 0.5))});
  const json g = compare(a, b)["comparisons"][0]["geomean"];
  EXPECT_EQ(g["cells"], 2);
  EXPECT_NEAR(g["time_ratio"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(g["throughput_ratio"].get<double>(), 1.0, 1e-9);
}

TEST(Compare, TheContextDiffNamesWhatDiffers) {
  json a = report({cell("cpu.spin", "serial", 1, kFive)}, 2);
  json b = report({cell("cpu.spin", "serial", 1, kFive)}, 16);
  b["context"]["counters_unavailable"] = json::object();
  b["config"]["scaling"] = "weak";
  const json cmp = compare(a, b);
  std::set<std::string> fields;
  for (const json& d : cmp["comparisons"][0]["context_diff"]) fields.insert(d["field"]);
  EXPECT_EQ(fields, (std::set<std::string>{"logical_cpus", "cpus_allowed", "counters_unavailable",
                                           "config.scaling"}));
  EXPECT_FALSE(cmp["comparisons"][0]["warnings"].empty());
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("differs: cpus_allowed: 2 -> 16"), std::string::npos) << text;
}

// A machine three times slower in everything: raw times triple, but against its own serial
// baseline nothing changed, and the model ordering holds.
TEST(Compare, NormalizeComparesMachinesOfDifferentSpeeds) {
  const json fast = report({cell("cpu.pidigits", "serial", 1, kFive),
                            cell("cpu.pidigits", "process_pool", 2, scaled(kFive, 0.5)),
                            cell("cpu.pidigits", "gil_threads", 2, scaled(kFive, 1.05))});
  const json slow = report({cell("cpu.pidigits", "serial", 1, scaled(kFive, 3)),
                            cell("cpu.pidigits", "process_pool", 2, scaled(kFive, 3.0 / 8)),
                            cell("cpu.pidigits", "gil_threads", 2, scaled(kFive, 3 * 1.05))},
                           16);
  CompareOptions opt;
  opt.fail_on_regression_pct = 10;
  const json raw = compare(fast, slow, opt);
  EXPECT_EQ(comparison_exit_code(raw), 1);  // serial and gil_threads are 3x slower
  opt.normalize = true;
  const json norm = compare(fast, slow, opt);
  EXPECT_EQ(comparison_exit_code(norm), 0);
  for (const json& c : norm["comparisons"][0]["cells"]) {
    SCOPED_TRACE(c["model"].get<std::string>());
    EXPECT_EQ(c["state"], "compared");
    if (c["model"] == "process_pool")
      EXPECT_NEAR(c["time"]["ratio"].get<double>(), 0.25, 1e-9);  // 2x there, 8x here
    else
      EXPECT_NEAR(c["time"]["ratio"].get<double>(), 1.0, 1e-9);
  }
  bool found = false;
  for (const json& k : norm["conclusions"]) {
    if (k["model"] != "process_pool" || k["other"] != "gil_threads") continue;
    found = true;
    EXPECT_TRUE(k["holds"]);
    EXPECT_NEAR(k["reports"][0]["ratio"].get<double>(), 2.1, 1e-9);
    EXPECT_NEAR(k["reports"][1]["ratio"].get<double>(), 8.4, 1e-9);
  }
  EXPECT_TRUE(found);
  const std::string text = format_comparison(norm, CompareFormat::text);
  EXPECT_NE(text.find("holds: process_pool beats gil_threads on cpu.pidigits: 2.10x"),
            std::string::npos)
      << text;
}

TEST(Compare, AConclusionThatFlipsIsReported) {
  const json a = report({cell("io.sleep", "serial", 1, kFive),
                         cell("io.sleep", "async", 1, scaled(kFive, 0.1)),
                         cell("io.sleep", "gil_threads", 2, scaled(kFive, 0.5))});
  const json b = report({cell("io.sleep", "serial", 1, kFive),
                         cell("io.sleep", "async", 1, scaled(kFive, 0.5)),
                         cell("io.sleep", "gil_threads", 2, scaled(kFive, 0.1))});
  const json cmp = compare(a, b);
  ASSERT_EQ(cmp["conclusions"].size(), 2u);  // async vs serial, async vs gil_threads
  for (const json& k : cmp["conclusions"])
    EXPECT_EQ(k["holds"].get<bool>(), k["other"] == "serial") << k.dump();
}

TEST(Compare, MoreReportsAreEachComparedWithTheFirst) {
  const json a = report({cell("cpu.spin", "serial", 1, kFive),
                         cell("cpu.spin", "free_threads", 2, scaled(kFive, 0.5))});
  const json b = report({cell("cpu.spin", "serial", 1, kFive),
                         cell("cpu.spin", "free_threads", 2, scaled(kFive, 0.55))});
  const json c = report({cell("cpu.spin", "serial", 1, kFive),
                         cell("cpu.spin", "free_threads", 2, scaled(kFive, 1.0))});
  CompareOptions opt;
  opt.fail_on_regression_pct = 50;
  const json cmp = compare_reports({{"x/a.json", a}, {"y/a.json", b}, {"c.json", c}}, opt);
  ASSERT_EQ(cmp["comparisons"].size(), 2u);
  EXPECT_EQ(cmp["base"]["label"], "x/a.json");  // same file names: the paths tell them apart
  EXPECT_EQ(cmp["comparisons"][0]["new"]["label"], "y/a.json");
  EXPECT_TRUE(cmp["comparisons"][0]["gating"].empty());   // +10% is inside 50%
  EXPECT_EQ(cmp["comparisons"][1]["gating"].size(), 1u);  // +100% is not
  EXPECT_EQ(comparison_exit_code(cmp), 1);
  ASSERT_EQ(cmp["conclusions"].size(), 1u);  // free_threads against serial, in three reports
  const json& k = cmp["conclusions"][0];
  EXPECT_EQ(k["reports"].size(), 3u);
  EXPECT_FALSE(k["holds"]);  // beats, beats, then measurably the same as serial
  EXPECT_EQ(k["verdict"], "differs");
  EXPECT_EQ(k["reports"][0]["relation"], "beats");
  EXPECT_EQ(k["reports"][2]["relation"], "ties");
  EXPECT_TRUE(k["reports"][2]["clear"]);
}

// One workload, serial and one model at 2 workers, the model's time per task `winner_time` times
// serial's with the relative spread of `spread` (each repetition's factor).
json duel(double speedup, const std::vector<double>& spread, const std::string& model = "m") {
  std::vector<double> t;
  for (double f : spread) t.push_back(1000 * f / speedup);
  return report({cell("cpu.spin", "serial", 1, kFive), cell("cpu.spin", model, 2, t)});
}

const std::vector<double> kTight = {1.0, 1.01, 0.99, 1.02, 0.98};
// A noisy machine: one repetition in five took a quarter longer.
const std::vector<double> kNoisy = {1.0, 1.12, 0.9, 1.25, 0.95};

const json& only_conclusion(const json& cmp) {
  EXPECT_EQ(cmp["conclusions"].size(), 1u) << cmp["conclusions"].dump();
  return cmp["conclusions"][0];
}

TEST(Conclusions, ClearAndOppositeDiffers) {
  // m beats serial 2x in BASE; in NEW serial beats m 2x.
  const json k = only_conclusion(compare(duel(2, kTight), duel(0.5, kTight)));
  EXPECT_EQ(k["model"], "m");
  EXPECT_EQ(k["verdict"], "differs");
  EXPECT_FALSE(k["holds"]);
  EXPECT_EQ(k["reports"][0]["relation"], "beats");
  EXPECT_EQ(k["reports"][1]["relation"], "loses to");
  for (const json& r : k["reports"]) {
    EXPECT_TRUE(r["clear"]);
    EXPECT_LE(r["ci"][0].get<double>(), r["ratio"].get<double>());
    EXPECT_GE(r["ci"][1].get<double>(), r["ratio"].get<double>());
  }
  EXPECT_NEAR(k["reports"][1]["ratio"].get<double>(), 0.5, 1e-9);
  EXPECT_LT(k["reports"][1]["ci"][1].get<double>(), 1);
}

TEST(Conclusions, ClearAndTheSameWayHolds) {
  CompareOptions opt;
  opt.normalize = true;
  const json cmp = compare(duel(2, kTight), duel(2.1, kNoisy), opt);
  const json& k = only_conclusion(cmp);
  EXPECT_EQ(k["verdict"], "holds");
  EXPECT_TRUE(k["holds"]);
  EXPECT_GT(k["reports"][1]["ci"][0].get<double>(), 1);
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("holds: m beats serial on cpu.spin: 2.00x ["), std::string::npos) << text;
  EXPECT_NE(text.find("1 conclusion(s): 1 hold, 0 differ, 0 within noise"), std::string::npos)
      << text;
}

// A 2x win on one machine and a tight 1.0x on another (two cores, then one) is a difference:
// the second machine measured a tie, it did not fail to measure.
TEST(Conclusions, AClearWinAgainstAClearTieDiffers) {
  CompareOptions opt;
  opt.normalize = true;
  const json k = only_conclusion(compare(duel(2.0, kTight), duel(1.0, kTight), opt));
  EXPECT_EQ(k["verdict"], "differs");
  EXPECT_EQ(k["reports"][1]["relation"], "ties");
  // Ties everywhere hold; a tie against the grey zone (1.07x: neither a tie nor a win) is noise.
  EXPECT_EQ(only_conclusion(compare(duel(1.0, kTight), duel(1.01, kTight), opt))["verdict"],
            "holds");
  EXPECT_EQ(only_conclusion(compare(duel(1.0, kTight), duel(1.07, kTight), opt))["verdict"],
            "within noise");
}

// The case: a 1.05x tie on one machine against a 1.09x win on the other, with spread
// that overlaps. Neither is a conclusion, so nothing flips.
TEST(Conclusions, ASmallWinAgainstATieIsWithinNoise) {
  CompareOptions opt;
  opt.normalize = true;
  const json cmp = compare(duel(1.05, kNoisy), duel(1.09, kNoisy), opt);
  const json& k = only_conclusion(cmp);
  EXPECT_EQ(k["verdict"], "within noise");
  EXPECT_FALSE(k["holds"]);
  EXPECT_EQ(k["reports"][0]["why"], "interval includes 1");
  EXPECT_LE(k["reports"][0]["ci"][0].get<double>(), 1);
  const std::string text = format_comparison(cmp, CompareFormat::text);
  EXPECT_NE(text.find("within noise: m vs serial on cpu.spin: unclear (interval includes 1) "
                      "1.05x ["),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("DIFFERS"), std::string::npos) << text;
}

// Beyond noise is not enough: 1.05x and 0.95x on tight repetitions have intervals clear of 1,
// but a 5% difference is not what "beats" means here; the interval must clear the minimum.
TEST(Conclusions, TheMinimumEffectKeepsSmallOrderingsFromFlipping) {
  const json a = duel(1.05, kTight), b = duel(1 / 1.05, kTight);
  const json k = only_conclusion(compare(a, b));
  EXPECT_EQ(k["verdict"], "within noise");
  for (const json& r : k["reports"]) EXPECT_EQ(r["why"], "below the minimum effect");
  CompareOptions opt;
  opt.min_effect_pct = 0;
  EXPECT_EQ(only_conclusion(compare(a, b, opt))["verdict"], "differs");
  opt.min_effect_pct = 1;
  EXPECT_EQ(only_conclusion(compare(a, b, opt))["verdict"], "differs");
  // Both intervals reach inside 4%, though the ratios are 5% out: not an ordering.
  opt.min_effect_pct = 4;
  EXPECT_EQ(only_conclusion(compare(a, b, opt))["verdict"], "within noise");
  opt.min_effect_pct = 6;
  EXPECT_EQ(only_conclusion(compare(a, b, opt))["verdict"], "within noise");
}

TEST(Conclusions, TwoRepetitionsAreTooFewForAConclusion) {
  const json a =
      report({cell("cpu.spin", "serial", 1, {1000, 1010}), cell("cpu.spin", "m", 2, {100, 101})});
  const json b = report(
      {cell("cpu.spin", "serial", 1, {1000, 1010}), cell("cpu.spin", "m", 2, {10000, 10100})});
  const json k = only_conclusion(compare(a, b));
  EXPECT_EQ(k["verdict"], "within noise");
  EXPECT_EQ(k["reports"][0]["why"], "too few repetitions");
}

// Two runs of one matrix on one machine: the same true ratios, drawn again with noise (a few
// percent, and now and then a repetition a third slower). Whatever the noise does to each
// ratio, it must not produce a DIFFERS.
TEST(Conclusions, BackToBackRunsOfOneMatrixNeverDiffer) {
  uint64_t state = 42;
  auto uniform = [&] {  // splitmix64 in [0, 1): the same draws on every platform
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<double>((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
  };
  const std::vector<double> truth = {1.0, 1.0, 1.02, 1.04, 1.05, 1.07, 1.09, 1.5, 2.0, 8.0};
  auto run_matrix = [&] {
    std::vector<json> cells;
    for (size_t w = 0; w < 20; ++w) {
      // Appended, not "w" + ...: GCC 12's -Wrestrict misfires on a literal plus a temporary.
      std::string workload = "w";
      workload += std::to_string(w);
      auto reps = [&](double speedup) {
        std::vector<double> t;
        for (int r = 0; r < 5; ++r) {
          double f = 1 + 0.06 * (uniform() - 0.5);
          if (uniform() < 0.1) f *= 1.33;
          t.push_back(1000 * f / speedup);
        }
        return t;
      };
      cells.push_back(cell(workload, "serial", 1, reps(1)));
      for (size_t m = 0; m < truth.size(); ++m)
        cells.push_back(
            cell(workload, std::string("m").append(std::to_string(m)), 2, reps(truth[m])));
    }
    return report(cells);
  };
  const json a = run_matrix(), b = run_matrix();
  CompareOptions opt;
  opt.normalize = true;
  const json cmp = compare(a, b, opt);
  ASSERT_EQ(cmp["conclusions"].size(), 20u * truth.size());
  size_t holds = 0;
  for (const json& k : cmp["conclusions"]) {
    EXPECT_NE(k["verdict"], "differs") << k.dump();
    holds += k["verdict"] == "holds";
  }
  EXPECT_GT(holds, 20u * 3);           // the 1.5x, 2x and 8x wins against serial and the ties
  EXPECT_EQ(compare(a, b, opt), cmp);  // the bootstrap is seeded: the same output every time
}

TEST(Compare, NormalizeNeedsASerialBaseline) {
  const json a = report({cell("cpu.spin", "free_threads", 2, kFive)});
  CompareOptions opt;
  opt.normalize = true;
  EXPECT_EQ(only_cell(compare(a, a, opt))["state"], "no_serial_baseline");
  // cpython.* models divide by cpython.serial, named by the cell or implied by the prefix.
  json py = report({cell("cpu.spin", "cpython.serial", 1, kFive),
                    cell("cpu.spin", "cpython.threading", 2, kFive)});
  const json cmp = compare(py, py, opt);
  for (const json& c : cmp["comparisons"][0]["cells"]) EXPECT_EQ(c["state"], "compared");
}

// Found by fuzz_report: a report without some counters crashed format_table (const
// operator[] on a missing key). The corpus file fuzz/corpus/report/minimal.json replays it.
TEST(FormatTable, AReportWithoutCountersStillFormats) {
  json r = report({cell("cpu.spin", "serial", 1, kFive)});
  r["results"][0]["summary"]["throughput_per_s"] = {
      {"n", 5}, {"median", 1e4}, {"mean", 1e4}, {"min", 1e4}, {"max", 1e4}, {"ci95", {1e4, 1e4}}};
  for (json& rep : r["results"][0]["repetitions"]) rep["counters"] = json::object();
  ASSERT_NO_THROW(validate_report(r));
  const std::string t = format_table(r);
  EXPECT_NE(t.find("n/a"), std::string::npos) << t;
}

TEST(Compare, MarkdownAndJsonFormats) {
  const json a = report({cell("cpu.spin", "serial", 1, kFive)});
  const json cmp = compare(a, report({cell("cpu.spin", "serial", 1, scaled(kFive, 2))}));
  const std::string md = format_comparison(cmp, CompareFormat::markdown);
  EXPECT_NE(md.find("| workload"), std::string::npos) << md;
  EXPECT_NE(md.find("| cpu.spin"), std::string::npos) << md;
  EXPECT_NE(md.find("+100.0%"), std::string::npos) << md;
  EXPECT_EQ(json::parse(format_comparison(cmp, CompareFormat::json)), cmp);
}

}  // namespace
}  // namespace concbench
