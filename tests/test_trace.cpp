// The timeline (--trace, trace.hpp): a valid Chrome trace with the expected tracks and GIL
// events, the cap, and a traced cell whose other repetitions run exactly as untraced ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "concbench/report.hpp"
#include "concbench/runner.hpp"
#include "concbench/trace.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using nlohmann::json;

std::string temp_path(const char* name) {
  return "/tmp/concbench-test-" + std::to_string(getpid()) + "-" + name;
}

RunConfig traced(const std::string& model, int workers, const std::string& path,
                 size_t cap = kDefaultTraceCap) {
  RunConfig c;
  c.models = {model};
  c.workers = {workers};
  c.repetitions = 2;
  c.trace_path = path;
  c.trace_cap = cap;
  return c;
}

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

TEST(Trace, GilThreadsEchoUnderLoadIsAValidTraceWithGilEvents) {
  const std::string path = temp_path("trace.json");
  const RunConfig c = traced("gil_threads", 2, path);
  const std::vector<CellResult> cells = {
      run_cell({"latency.echo_under_load", "gil_threads", 2}, c)};
  ASSERT_EQ(cells[0].status, "ok") << cells[0].error;
  write_trace_atomic(path, cells);
  const json t = read_json(path);
  std::remove(path.c_str());
  ASSERT_TRUE(t["traceEvents"].is_array());
  std::set<std::string> threads, ended;
  size_t waits = 0, holds = 0, tasks = 0, io = 0;
  for (const json& e : t["traceEvents"]) {
    const std::string ph = e.at("ph");
    ASSERT_TRUE(ph == "M" || ph == "X" || ph == "i" || ph == "C") << e.dump();
    ASSERT_TRUE(e.at("pid").is_number_integer()) << e.dump();
    if (ph == "M") {
      if (e["name"] == "thread_name") threads.insert(e["args"]["name"].get<std::string>());
      continue;
    }
    ASSERT_TRUE(e.at("ts").is_number() && e["ts"].get<double>() >= 0) << e.dump();
    ASSERT_TRUE(e.at("tid").is_number_integer()) << e.dump();
    if (ph != "X") continue;
    ASSERT_TRUE(e.at("dur").is_number() && e["dur"].get<double>() >= 0) << e.dump();
    const std::string name = e["name"];
    if (name == "GIL wait") {
      ++waits;
      ended.insert(e["args"]["ended"].get<std::string>());
    }
    holds += name == "GIL held";
    tasks += name == "task";
    io += name == "IO wait";
  }
  EXPECT_EQ(threads, (std::set<std::string>{"worker 0", "worker 1"}));
  EXPECT_GT(waits, 0u);
  EXPECT_GT(holds, 0u);
  EXPECT_EQ(tasks, 2u);  // the responder's task and the spinner's
  EXPECT_GT(io, 0u);     // the responder's reads
  for (const std::string& how : ended)
    EXPECT_TRUE(how == "free" || how == "slipped_through" || how == "signalled_won" ||
                how == "timed_out_set_drop_request" || how == "forced_switch")
        << how;
  const json& cell = t["otherData"]["cells"].at(0);
  EXPECT_EQ(cell["dropped"], 0);
  EXPECT_EQ(cell["cell"], "gil_threads latency.echo_under_load 2 workers");
}

TEST(Trace, RecordingStopsAtTheCapAndSaysSo) {
  const std::string path = temp_path("cap.json");
  const RunConfig c = traced("thread_pool", 2, path, 30);
  const CellResult r = run_cell({"overhead.noop", "thread_pool", 2}, c);
  ASSERT_EQ(r.status, "ok") << r.error;
  const json& s = r.trace["summary"];
  EXPECT_LE(s["events"].get<size_t>(), 30u);
  EXPECT_GT(s["dropped"].get<size_t>(), 0u);
  EXPECT_NE(s["note"].get<std::string>().find("cap of 30 events"), std::string::npos) << s.dump();
  EXPECT_EQ(cell_to_json(r)["trace"], s);  // the report keeps the summary, not the events
}

TEST(Trace, EventLoopsRecordEachTasksLifeAndTheCpuStepsThatHoldTheLoop) {
  for (const char* model : {"async", "async_mt", "fibers"}) {
    SCOPED_TRACE(model);
    // ASan's fake stacks and Boost.Context's stack switch do not mix (tests/test_fibers.cpp):
    // sanitize.sh runs the fibers without them.
    if (std::string(model) == "fibers" && testing_helpers::asan_fake_stacks()) continue;
    const std::string path = temp_path("loop.json");
    const int workers = std::string(model) == "async" ? 1 : 2;
    RunConfig c = traced(model, workers, path);
    c.params["tasks"] = "8";
    const CellResult r = run_cell({"mixed.cpu_io", model, workers}, c);
    ASSERT_EQ(r.status, "ok") << r.error;
    ASSERT_FALSE(r.trace["summary"].contains("note")) << r.trace["summary"].dump();
    const json& events = r.trace["events"];
    // Every task begins and ends once, as an async span with its item as the id (tasks on a
    // loop overlap), and every CPU step is a span on the thread it held.
    std::map<uint64_t, int> begun, ended;
    size_t steps = 0;
    for (const json& e : events) {
      if (e.value("name", "") == "task" && e["ph"] == "b") ++begun[e["id2"]["local"]];
      if (e.value("name", "") == "task" && e["ph"] == "e") ++ended[e["id2"]["local"]];
      if (e.value("name", "") == "CPU step (holds the loop)") {
        ASSERT_EQ(e["ph"], "X");
        ++steps;
      }
    }
    const uint64_t tasks = r.repetitions.at(0).tasks;
    EXPECT_EQ(begun.size(), tasks);
    EXPECT_EQ(begun, ended);
    EXPECT_EQ(steps, tasks);  // mixed.cpu_io: one CPU step per task
  }
}

TEST(Trace, WithoutTraceNothingIsRecorded) {
  RunConfig c = traced("gil_threads", 2, "");
  const CellResult r = run_cell({"cpu.spin", "gil_threads", 2}, c);
  ASSERT_EQ(r.status, "ok") << r.error;
  EXPECT_TRUE(r.trace.is_null());
  EXPECT_TRUE(cell_to_json(r)["trace"].is_null());
}

double per_task_ns(const CellResult& r, size_t from_rep) {
  std::vector<double> v;
  for (size_t i = from_rep; i < r.repetitions.size(); ++i)
    v.push_back(static_cast<double>(r.repetitions[i].wall_ns) /
                static_cast<double>(r.repetitions[i].tasks));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Only the first measured repetition is traced: the others must run as a cell without --trace
// does. A buffer left attached would cost them two clock reads and a store per item, which on
// 20 ns tasks is no small share; interleaved runs with a wide margin tell the two apart.
TEST(Trace, TheUntracedRepetitionsOfATracedCellCostWhatAnUntracedCellDoes) {
  CONCBENCH_AWAIT_IDLE_CPUS(2);
  const std::string path = temp_path("ab.json");
  std::vector<double> ratios;
  for (int i = 0; i < 3; ++i) {
    RunConfig off = traced("serial", 1, "");
    off.repetitions = 4;
    off.min_time_s = 0.03;
    RunConfig on = off;
    on.trace_path = path;
    const CellResult a = run_cell({"overhead.noop", "serial", 1}, off);
    const CellResult b = run_cell({"overhead.noop", "serial", 1}, on);
    ASSERT_EQ(a.status, "ok");
    ASSERT_EQ(b.status, "ok");
    ASSERT_TRUE(b.trace.is_object());
    ratios.push_back(per_task_ns(b, 1) / per_task_ns(a, 1));
  }
  CONCBENCH_REQUIRE_IDLE_CPUS(2);  // still idle after the runs, checked before judging them
  std::sort(ratios.begin(), ratios.end());
  EXPECT_LT(ratios[1], 1.25) << ratios[0] << " " << ratios[1] << " " << ratios[2];
  EXPECT_GT(ratios[1], 0.8) << ratios[0] << " " << ratios[1] << " " << ratios[2];
}

TEST(Trace, SchedTraceReportsWakeupsOrWhyNot) {
  RunConfig c = traced("gil_threads", 2, "");
  c.sched_trace = true;
  const CellResult r = run_cell({"io.sleep", "gil_threads", 2}, c);
  ASSERT_EQ(r.status, "ok") << r.error;
  const json cell = cell_to_json(r);
  const json& s = cell["sched_trace"];
  ASSERT_TRUE(s.is_object()) << s.dump();
  if (!s["available"].get<bool>()) {
    EXPECT_FALSE(s["reason"].get<std::string>().empty());
    GTEST_SKIP() << s["reason"].get<std::string>();
  }
  // Two threads sleeping and waking for every task: wake-ups, each with a latency.
  EXPECT_GT(s["wakeups"].get<int>(), 0) << s.dump();
  EXPECT_GT(s["wakeup_latency_ns"]["n"].get<int>(), 0) << s.dump();
  EXPECT_EQ(cell_to_json(run_cell({"io.sleep", "gil_threads", 2},
                                  traced("gil_threads", 2, "")))["sched_trace"],
            nullptr);
}

}  // namespace
}  // namespace concbench
