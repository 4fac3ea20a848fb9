// verdict(): which model wins each workload, on synthetic reports whose winners, margins and
// reasons are known by construction.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "concbench/report.hpp"
#include "concbench/verdict.hpp"

namespace concbench {
namespace {

using nlohmann::json;

constexpr int kTasks = 10;
const std::vector<double> kFive = {1000, 1010, 990, 1020, 980};

std::vector<double> scaled(std::vector<double> v, double f) {
  for (double& x : v) x *= f;
  return v;
}

struct CellSpec {
  std::string workload = "cpu.spin", model = "serial";
  int workers = 1;
  std::vector<double> wall_ns = kFive;  // per repetition, for kTasks tasks
  std::string status = "ok", error;
  json workload_params = {{"units", "100"}, {"tasks", "10"}};
  double busy = 1;  // CPU time / wall time
  // Per repetition (given its wall_ns): model_metrics and metrics.
  std::function<json(double)> model_metrics = [](double) { return json::object(); };
  std::function<json(double)> metrics = [](double) { return json::object(); };
};

json cell(const CellSpec& s) {
  json reps = json::array();
  for (double w : s.wall_ns)
    reps.push_back({{"wall_ns", w},
                    {"cpu_user_ns", w * s.busy},
                    {"cpu_sys_ns", 0},
                    {"cpu_covers_children", true},
                    {"tasks", kTasks},
                    {"throughput_per_s", kTasks / (w / 1e9)},
                    {"task_latency_ns", {{"p50", 1}, {"p99", 2}, {"max", 3}}},
                    {"counters", {{"context_switches", 5}, {"cycles", nullptr}}},
                    {"metrics", s.metrics(w)},
                    {"model_metrics", s.model_metrics(w)},
                    {"verified", s.status == "ok"}});
  const json stat = {{"n", 1},   {"median", 1}, {"mean", 1},
                     {"min", 1}, {"max", 1},    {"ci95", {1, 1}}};
  json params = s.workload_params;
  return {{"workload", s.workload},
          {"model", s.model},
          {"workers", s.workers},
          {"params", params},
          {"workload_params", s.workload_params},
          {"workload_origin", "builtin"},
          {"serial_baseline", "serial"},
          {"status", s.status},
          {"error", s.error.empty() ? json(nullptr) : json(s.error)},
          {"repetitions", reps},
          {"summary",
           {{"wall_ns", stat},
            {"wall_ns_per_task", stat},
            {"throughput_per_s", stat},
            {"speedup", nullptr},
            {"speedup_vs_serial", nullptr}}}};
}

json report(const std::vector<json>& cells, json config_params = json::object(),
            const std::string& scaling = "strong") {
  json r = {{"schema_version", kSchemaVersion},
            {"generator", "concbench bench_runner"},
            {"complete", true},
            {"config",
             {{"suite", "quick"}, {"scaling", scaling}, {"seed", 1}, {"params", config_params}}},
            {"context", {{"hostname", "box"}, {"logical_cpus", 2}, {"cpus_allowed", 2}}},
            {"results", cells},
            {"benchmarks", json::array()}};
  validate_report(r);  // what `bench_runner verdict` reads has passed it
  return r;
}

CellSpec spec(const std::string& model, int workers, std::vector<double> wall, double busy = 1) {
  CellSpec s;
  s.model = model;
  s.workers = workers;
  s.wall_ns = std::move(wall);
  s.busy = busy;
  return s;
}

bool has(const json& v, const std::string& s) {
  return v.get<std::string>().find(s) != std::string::npos;
}

TEST(Verdict, AClearWinnerWithItsWorkersAndMargins) {
  const json r = report({cell(spec("serial", 1, kFive)), cell(spec("free_threads", 1, kFive)),
                         cell(spec("free_threads", 2, scaled(kFive, 0.5), 1.96)),
                         cell(spec("gil_threads", 1, kFive)),
                         cell(spec("gil_threads", 2, scaled(kFive, 0.7), 1.0))});
  const json v = verdict(r);
  EXPECT_EQ(v["verdict_version"], 1);
  ASSERT_EQ(v["workloads"].size(), 1u);
  const json& e = v["workloads"][0];
  EXPECT_EQ(e["workload"], "cpu.spin");
  EXPECT_EQ(e["winner"], "free_threads");
  EXPECT_EQ(e["workers"], 2);
  EXPECT_EQ(e["runner_up"], "gil_threads");
  EXPECT_TRUE(e["clear"].get<bool>());
  const json& m = e["margin_over_runner_up"];
  EXPECT_NEAR(m["ratio"].get<double>(), 1.4, 1e-9);
  EXPECT_LE(m["ci95"][0].get<double>(), 1.4);
  EXPECT_GE(m["ci95"][1].get<double>(), 1.4);
  const json& s = e["margin_over_serial"];
  EXPECT_NEAR(s["ratio"].get<double>(), 2.0, 1e-9);
  EXPECT_LE(s["ci95"][0].get<double>(), 2.0);
  EXPECT_GE(s["ci95"][1].get<double>(), 2.0);
  EXPECT_EQ(s["baseline"], "serial");
  EXPECT_TRUE(has(e["reason"], "CPU 1.96 of 2 workers busy")) << e["reason"];
  EXPECT_TRUE(has(e["line"], "cpu.spin: free_threads at 2 workers wins, 2.00x over serial"))
      << e["line"];
  EXPECT_TRUE(has(e["line"], "1.40x over gil_threads")) << e["line"];
  // The same report gives the same verdict: the bootstrap is seeded.
  EXPECT_EQ(verdict(r), v);
  EXPECT_EQ(format_verdict(v, VerdictFormat::text), e["line"].get<std::string>() + "\n");
}

TEST(Verdict, OverlappingIntervalsAreNoClearWinner) {
  CellSpec a = spec("async", 1, kFive), b = spec("async_mt", 1, {1005, 995, 1015, 985, 1000});
  a.workload = b.workload = "io.sleep";
  CellSpec s = spec("serial", 1, scaled(kFive, 8));
  s.workload = "io.sleep";
  const json v = verdict(report({cell(s), cell(a), cell(b)}));
  const json& e = v["workloads"][0];
  EXPECT_FALSE(e["clear"].get<bool>());
  EXPECT_EQ(e["tied"], json({"async", "async_mt"}));
  EXPECT_TRUE(has(e["line"], "io.sleep: no clear winner between async and async_mt")) << e["line"];
  EXPECT_FALSE(has(e["line"], "wins")) << e["line"];
}

TEST(Verdict, AMarginWithinTheTieZoneIsNoClearWinner) {
  // 3% apart with a tight interval: beyond 1, but within ±5% of it.
  const std::vector<double> kTight = {1000, 1001, 999, 1002, 998};
  const json v = verdict(report(
      {cell(spec("serial", 1, kTight)), cell(spec("thread_pool", 1, scaled(kTight, 1.03)))}));
  const json& e = v["workloads"][0];
  EXPECT_FALSE(e["clear"].get<bool>());
  EXPECT_EQ(e["unclear_why"], "within the tie zone");
  EXPECT_GT(e["margin_over_runner_up"]["ci95"][0].get<double>(), 1.0);
  EXPECT_TRUE(has(e["line"], "no clear winner between serial and thread_pool")) << e["line"];
  // With no minimum effect, the same margin is a clear win.
  VerdictOptions opt;
  opt.min_effect_pct = 0;
  EXPECT_TRUE(verdict(report({cell(spec("serial", 1, kTight)),
                              cell(spec("thread_pool", 1, scaled(kTight, 1.03)))}),
                      opt)["workloads"][0]["clear"]
                  .get<bool>());
}

TEST(Verdict, AFailedCellNeverWinsAndIsListed) {
  CellSpec failed = spec("process_pool", 2, {10, 10, 10, 10, 10});  // would be fastest by far
  failed.status = "failed";
  failed.error = "worker 1 died: signal 9\nmore detail";
  CellSpec timed_out = spec("async", 1, {5, 5});
  timed_out.status = "timed_out";
  const json v = verdict(
      report({cell(spec("serial", 1, kFive)), cell(spec("free_threads", 2, scaled(kFive, 0.5), 2)),
              cell(failed), cell(timed_out)}));
  const json& e = v["workloads"][0];
  EXPECT_EQ(e["winner"], "free_threads");
  EXPECT_EQ(e["runner_up"], "serial");
  bool listed = false;
  for (const json& o : e["others"])
    if (o["model"] == "process_pool") {
      listed = true;
      EXPECT_EQ(o["status"], "failed");
      EXPECT_EQ(o["error"], "worker 1 died: signal 9");
    }
  EXPECT_TRUE(listed);
  EXPECT_TRUE(has(e["line"], "process_pool: failed: worker 1 died: signal 9")) << e["line"];
  EXPECT_FALSE(has(e["line"], "more detail")) << e["line"];
  EXPECT_TRUE(has(e["line"], "async: timed_out")) << e["line"];

  // Nothing finished: no winner, every failure named.
  const json none = verdict(report({cell(failed)}))["workloads"][0];
  EXPECT_TRUE(none["winner"].is_null());
  EXPECT_TRUE(has(none["line"], "no model finished")) << none["line"];
  EXPECT_TRUE(has(none["line"], "process_pool: failed")) << none["line"];
}

TEST(Verdict, GilReasonsForGilBoundThreads) {
  CellSpec gil = spec("gil_threads", 2, kFive, 1.0);
  gil.model_metrics = [](double wall) {
    return json{{"gil_wait_ns", {{"total", 0.48 * 2 * wall}, {"p99", 1}}}, {"gil_switches", 40}};
  };
  CellSpec py = spec("cpython.threading", 2, scaled(kFive, 1.1), 1.0);
  py.model_metrics = [](double) { return json{{"threads", 2}}; };
  const json v = verdict(report({cell(spec("serial", 1, scaled(kFive, 0.99))), cell(gil), cell(py),
                                 cell(spec("free_threads", 2, scaled(kFive, 0.5), 1.97))}));
  const json& e = v["workloads"][0];
  EXPECT_EQ(e["winner"], "free_threads");
  std::string gil_reason, py_reason;
  for (const json& o : e["others"]) {
    if (o["model"] == "gil_threads") gil_reason = o["reason"];
    if (o["model"] == "cpython.threading") py_reason = o["reason"];
  }
  EXPECT_NE(gil_reason.find("GIL wait 48% of worker time"), std::string::npos) << gil_reason;
  EXPECT_NE(py_reason.find("CPU 1.00 of 2 threads busy: the GIL lets one thread run Python"),
            std::string::npos)
      << py_reason;
  // Both GIL-bound losers are telling: the line names them.
  EXPECT_TRUE(has(e["line"], "gil_threads at 2 workers: GIL wait 48% of worker time")) << e["line"];
  EXPECT_TRUE(has(e["line"], "cpython.threading at 2 workers: CPU 1.00 of 2 threads busy"))
      << e["line"];

  // A GIL model that wins says so too.
  const json alone = verdict(report({cell(spec("serial", 1, scaled(kFive, 2))), cell(gil)}));
  EXPECT_TRUE(has(alone["workloads"][0]["reason"], "GIL")) << alone["workloads"][0]["reason"];
}

TEST(Verdict, ProcessPoolAndAsyncReasons) {
  CellSpec pool = spec("process_pool", 2, scaled(kFive, 0.6), 1.9);
  pool.workload_params["payload_bytes"] = "65536";
  pool.model_metrics = [](double) {
    return json{{"serialize_ns", 80}, {"deserialize_ns", 40}, {"worker_exec_ns", 880}};
  };
  CellSpec loop = spec("async", 1, scaled(kFive, 0.9), 0.3);
  loop.workload_params["payload_bytes"] = "65536";
  loop.metrics = [](double) { return json{{"sleep_overlap", 32.0}}; };
  loop.model_metrics = [](double) {
    return json{{"loop_threads", 1}, {"loop_lag", {{"samples", 10}, {"p99_ns", 295e6}}}};
  };
  CellSpec serial = spec("serial", 1, kFive);
  serial.workload_params["payload_bytes"] = "65536";
  const json e = verdict(report({cell(serial), cell(pool), cell(loop)}))["workloads"][0];
  EXPECT_EQ(e["winner"], "process_pool");
  EXPECT_TRUE(has(e["reason"], "serialization 12% of task time at 64 KiB payload")) << e["reason"];
  EXPECT_TRUE(has(e["line"], "32.0 sleeps overlapped in one thread")) << e["line"];
  EXPECT_TRUE(has(e["line"], "stalls: loop lag p99 295.00 ms")) << e["line"];

  // Pickled sizes from the Python process pool, where there is no payload parameter.
  CellSpec py = spec("cpython.process_pool", 2, scaled(kFive, 0.6), 1.9);
  py.model_metrics = [](double) {
    return json{{"pickled_input_bytes", 4096}, {"pickled_result_bytes", 8}};
  };
  const json p = verdict(report({cell(spec("serial", 1, kFive)), cell(py)}))["workloads"][0];
  EXPECT_TRUE(has(p["reason"], "pickled 4 KiB in, 8 B out per task")) << p["reason"];
}

// payload_bytes swept over three values, given out of order: process_pool wins the two small
// payloads, free_threads the large one.
TEST(Verdict, ASweepNamesWhereTheWinnerChanges) {
  std::vector<json> cells;
  for (const auto& [bytes, pool_factor] : std::vector<std::pair<std::string, double>>{
           {"262144", 0.9}, {"1024", 0.3}, {"65536", 0.4}}) {
    for (auto [model, workers, f] : std::vector<std::tuple<std::string, int, double>>{
             {"serial", 1, 1.0}, {"free_threads", 2, 0.6}, {"process_pool", 2, pool_factor}}) {
      CellSpec s = spec(model, workers, scaled(kFive, f));
      s.workload_params["payload_bytes"] = bytes;
      cells.push_back(cell(s));
    }
  }
  const json v = verdict(report(cells, {{"payload_bytes", "1024,65536,262144"}}));
  ASSERT_EQ(v["workloads"].size(), 3u);
  for (const json& e : v["workloads"]) {
    EXPECT_EQ(e["params"].size(), 1u) << e["params"];
    EXPECT_TRUE(e["params"].contains("payload_bytes"));
    EXPECT_EQ(e["sweep"], 0);
  }
  ASSERT_EQ(v["crossovers"].size(), 1u);
  const json& c = v["crossovers"][0];
  EXPECT_EQ(c["keys"], json({"payload_bytes"}));
  ASSERT_EQ(c["points"].size(), 3u);
  EXPECT_EQ(c["points"][0]["params"]["payload_bytes"], "1024");  // numeric order
  EXPECT_EQ(c["points"][1]["params"]["payload_bytes"], "65536");
  EXPECT_EQ(c["points"][2]["params"]["payload_bytes"], "262144");
  EXPECT_EQ(c["summary"],
            "process_pool wins at payload_bytes \u2264 65536, free_threads from 262144");
  ASSERT_EQ(c["changes"].size(), 1u);
  EXPECT_EQ(c["changes"][0]["from"], "process_pool");
  EXPECT_EQ(c["changes"][0]["to"], "free_threads");
  EXPECT_EQ(c["changes"][0]["at"], "262144");
  // One line for the workload.
  const std::string text = format_verdict(v, VerdictFormat::text);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text.rfind("cpu.spin: process_pool wins at payload_bytes", 0), 0u) << text;
  EXPECT_NE(format_verdict(v, VerdictFormat::markdown).find("free_threads from 262144"),
            std::string::npos);
}

// Groups that ran other tasks (different workload_params, not a sweep) are judged apart.
TEST(Verdict, GroupsWithDifferentWorkloadParamsAreNotCompared) {
  CellSpec big = spec("free_threads", 2, scaled(kFive, 5));
  big.workload_params["units"] = "1000";
  const json v = verdict(report({cell(spec("serial", 1, kFive)), cell(big)}));
  ASSERT_EQ(v["workloads"].size(), 2u);
  EXPECT_EQ(v["workloads"][0]["winner"], "serial");
  EXPECT_EQ(v["workloads"][0]["params"], json({{"units", "100"}}));
  EXPECT_TRUE(v["workloads"][0]["runner_up"].is_null());
  EXPECT_EQ(v["workloads"][1]["winner"], "free_threads");
  EXPECT_TRUE(v["workloads"][1]["margin_over_serial"].is_null());  // no serial cell ran these
  EXPECT_TRUE(v["crossovers"].empty());
  const std::string text = format_verdict(v, VerdictFormat::text);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_NE(text.find("cpu.spin {units=100}: only serial"), std::string::npos) << text;
  EXPECT_NE(text.find("cpu.spin {units=1000}: only free_threads"), std::string::npos) << text;
}

// Under weak scaling the task count grows with the workers: cells still ran the same work.
TEST(Verdict, WeakScalingIgnoresTasks) {
  CellSpec two = spec("free_threads", 2, scaled(kFive, 0.5), 2);
  two.workload_params["tasks"] = "20";
  const json v = verdict(report({cell(spec("serial", 1, kFive)), cell(two)}, {}, "weak"));
  ASSERT_EQ(v["workloads"].size(), 1u);
  EXPECT_EQ(v["workloads"][0]["winner"], "free_threads");
  EXPECT_EQ(v["workloads"][0]["runner_up"], "serial");
}

TEST(Verdict, Formats) {
  const json v = verdict(report(
      {cell(spec("serial", 1, kFive)), cell(spec("free_threads", 2, scaled(kFive, 0.5), 2))}));
  const std::string md = format_verdict(v, VerdictFormat::markdown);
  EXPECT_EQ(md.rfind("| workload", 0), 0u) << md;
  EXPECT_NE(md.find("| cpu.spin"), std::string::npos) << md;
  EXPECT_EQ(json::parse(format_verdict(v, VerdictFormat::json)), v);
}

}  // namespace
}  // namespace concbench
