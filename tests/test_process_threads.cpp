// process_threads: P processes with T threads each behind the process's own GIL; every item
// verifies; bad parameters are refused; a crashed worker fails its task, not the run.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/params.hpp"
#include "concbench/process_worker.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using testing_helpers::expected_item;
using testing_helpers::start;
using testing_helpers::tasks_of;

Batch batch_of(const TaskSet& ts, uint64_t rounds = 1) {
  static uint64_t draws = 0;
  return Batch{&ts.tasks, rounds, mix64(0x70746872ULL + ++draws)};
}

void expect_all_verified(const BatchResult& r, const TaskSet& ts, const Batch& b) {
  EXPECT_TRUE(r.failures.empty()) << (r.failures.empty() ? "" : r.failures[0].reason);
  ASSERT_EQ(r.done.size(), b.items());
  for (size_t k = 0; k < r.done.size(); ++k) {
    ASSERT_TRUE(r.done[k]) << k;
    EXPECT_EQ(r.checksums[k], expected_item(ts, b, k)) << k;
  }
}

bool has_children() {
  int status;
  return waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD;
}

TEST(ProcessThreads, EveryItemVerifiesAtTwoProcessesOfTwoThreads) {
  for (const char* start_method : {"fork", "spawn"}) {
    SCOPED_TRACE(start_method);
    auto m = start("process_threads", 2, {{"threads_per_process", "2"}, {"start", start_method}});
    for (const char* wl :
         {"cpu.spin", "io.sleep", "mixed.cpu_io", "io.pipe_echo", "overhead.noop"}) {
      SCOPED_TRACE(wl);
      std::map<std::string, std::string> p = {{"tasks", "9"}};
      if (std::string(wl) == "cpu.spin" || std::string(wl) == "io.pipe_echo") p["units"] = "10";
      if (std::string(wl) == "io.sleep") p["sleep_us"] = "300";
      if (std::string(wl) == "mixed.cpu_io") p["cpu_us"] = "10";
      const TaskSet ts = tasks_of(wl, p);
      const Batch b = batch_of(ts, 2);
      const BatchResult r = m->run(b);
      expect_all_verified(r, ts, b);
      EXPECT_TRUE(r.has_child_cpu);
      EXPECT_EQ(r.model_metrics["processes"], 2);
      EXPECT_EQ(r.model_metrics["threads_per_process"], 2);
      EXPECT_TRUE(r.model_metrics.contains("serialize_ns"));
    }
    m->teardown();
  }
  EXPECT_FALSE(has_children());
}

TEST(ProcessThreads, PProcessesAndPTimesTThreadsRunTasks) {
  constexpr int P = 2, T = 3;
  auto m = start("process_threads", P, {{"threads_per_process", std::to_string(T)}});
  // Sleeps release the GIL and last long enough that every thread of a process gets a task.
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "24"}, {"sleep_us", "20000"}});
  const Batch b = batch_of(ts);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  std::set<long> pids;
  std::set<std::pair<long, long>> threads;
  uint64_t tasks = 0;
  ASSERT_EQ(r.model_metrics["per_process"].size(), static_cast<size_t>(P));
  for (const auto& p : r.model_metrics["per_process"]) {
    ASSERT_TRUE(p.is_object()) << r.model_metrics.dump();
    const long pid = p["pid"].get<long>();
    pids.insert(pid);
    ASSERT_EQ(p["threads"].size(), static_cast<size_t>(T));
    for (const auto& t : p["threads"]) {
      EXPECT_GE(t["tasks"].get<uint64_t>(), 1u) << p.dump();
      if (t["tasks"].get<uint64_t>() > 0) threads.insert({pid, t["tid"].get<long>()});
      tasks += t["tasks"].get<uint64_t>();
    }
  }
  EXPECT_EQ(pids.size(), static_cast<size_t>(P));
  EXPECT_EQ(threads.size(), static_cast<size_t>(P * T));
  EXPECT_EQ(tasks, 24u);
  EXPECT_EQ(r.model_metrics["gil_acquisitions"].get<uint64_t>() >= 24u, true);
  m->teardown();
}

// The costs calibrated in the parent reach every worker, forked or spawned (through its
// command line), exactly; interpreter_cost=default gives the default's.
TEST(ProcessThreads, WorkersRunWithTheParentsInterpreterCost) {
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "4"}, {"units", "5"}});
  for (const char* cost : {"measured", "default"}) {
    for (const char* start_method : {"fork", "spawn"}) {
      SCOPED_TRACE(std::string(cost) + " " + start_method);
      auto m = start(
          "process_threads", 2,
          {{"threads_per_process", "2"}, {"start", start_method}, {"interpreter_cost", cost}});
      const Batch b = batch_of(ts);
      const BatchResult r = m->run(b);
      expect_all_verified(r, ts, b);
      const nlohmann::json& want = r.model_metrics["interpreter_cost"];
      ASSERT_TRUE(want.is_object()) << r.model_metrics.dump();
      if (std::string(cost) == "default") {
        EXPECT_EQ(want["source"], "default");
      }
      ASSERT_EQ(r.model_metrics["per_process"].size(), 2u);
      for (const auto& p : r.model_metrics["per_process"]) {
        const nlohmann::json& got = p["interpreter_cost"];
        for (const char* k :
             {"bytecode_ns", "responder_round_ns", "client_round_ns", "check_ns", "call_ns"})
          EXPECT_EQ(got[k], want[k]) << k;
      }
      m->teardown();
    }
  }
}

TEST(ProcessThreads, InterpreterCostArgumentsRoundTripAndRefuseJunk) {
  InterpreterCost c;
  c.bytecode_ns = 12.345678901234567;
  c.responder_round_ns = 4321;
  c.client_round_ns = 98765;
  c.check_ns = 1.0 / 3.0;
  c.call_ns = 27.5;
  const std::vector<std::string> args = interpreter_cost_args(c);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  const std::optional<InterpreterCost> back =
      parse_interpreter_cost_args(argv.data(), static_cast<int>(argv.size()));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->bytecode_ns, c.bytecode_ns);
  EXPECT_EQ(back->responder_round_ns, c.responder_round_ns);
  EXPECT_EQ(back->client_round_ns, c.client_round_ns);
  EXPECT_EQ(back->check_ns, c.check_ns);
  EXPECT_EQ(back->call_ns, c.call_ns);
  for (const char* bad : {"", "x", "-1", "nan", "inf", "1e999", "3abc"}) {
    std::vector<const char*> v = argv;
    v[3] = bad;
    EXPECT_FALSE(parse_interpreter_cost_args(v.data(), 5)) << bad;
  }
  EXPECT_FALSE(parse_interpreter_cost_args(argv.data(), 4));
}

TEST(ProcessThreads, BadThreadCountsAreRefused) {
  const ModelInfo& info = *find_model("process_threads");
  for (const char* bad : {"0", "257", "two"})
    EXPECT_THROW(Params::resolve(info.params, {{"threads_per_process", bad}}, "process_threads"),
                 UsageError)
        << bad;
}

TEST(ProcessThreads, ACrashedWorkerIsAFailedTaskNotAHang) {
  {
    auto m = start("process_threads", 2, {{"inject", "kill:0.2"}, {"inflight", "3"}});
    const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "40"}});
    const Batch b = batch_of(ts);
    const BatchResult r = m->run(b);
    ASSERT_FALSE(r.failures.empty());
    size_t done = 0;
    for (size_t k = 0; k < r.done.size(); ++k) {
      if (!r.done[k]) continue;
      ++done;
      EXPECT_EQ(r.checksums[k], expected_item(ts, b, k));
    }
    EXPECT_EQ(done + r.failures.size(), 40u);
    EXPECT_NE(r.failures[0].reason.find("signal 9"), std::string::npos) << r.failures[0].reason;
    EXPECT_GT(r.model_metrics["worker_replacements"].get<uint64_t>(), 0u);
    m->teardown();
  }
  EXPECT_FALSE(has_children());
}

}  // namespace
}  // namespace concbench
