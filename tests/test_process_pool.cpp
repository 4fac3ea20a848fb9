// process_pool: tasks cross the process boundary under every codec, transport and start method;
// injected faults fail their task and nothing else; no zombie or descriptor survives.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "concbench/checksum.hpp"
#include "concbench/model.hpp"
#include "concbench/process_settings.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

size_t open_fds() {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

bool has_children() {
  int status;
  return waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD;
}

TaskSet tasks_of(const char* workload, std::map<std::string, std::string> given) {
  const Workload& w = *find_workload(workload);
  return w.make_tasks(Params::resolve(w.params(), given, workload), 11);
}

std::unique_ptr<Model> start(int workers, std::map<std::string, std::string> params) {
  auto m = find_model("process_pool")->create();
  ModelConfig cfg;
  cfg.workers = workers;
  cfg.params = Params::resolve(find_model("process_pool")->params, params, "process_pool");
  m->setup(cfg);
  return m;
}

// The checksum item k must come back with: the workload's prediction sealed with the nonce the
// batch handed out for it (what the runner verifies).
uint64_t expected_checksum(const TaskSet& ts, const Batch& b, uint64_t k) {
  return seal(ts.expected[k % ts.tasks.size()], b.item_nonce(k));
}

// A batch with a nonce of its own, as the runner draws one per repetition.
Batch batch_of(const TaskSet& ts, uint64_t rounds = 1) {
  static uint64_t draws = 0;
  return Batch{&ts.tasks, rounds, mix64(0x70726f63ULL + ++draws)};
}

void expect_all_verified(const BatchResult& r, const TaskSet& ts, const Batch& b) {
  EXPECT_TRUE(r.failures.empty()) << (r.failures.empty() ? "" : r.failures[0].reason);
  ASSERT_EQ(r.done.size(), b.items());
  for (size_t k = 0; k < r.done.size(); ++k) {
    ASSERT_TRUE(r.done[k]) << k;
    EXPECT_EQ(r.checksums[k], expected_checksum(ts, b, k)) << k;
  }
}

class EveryWay
    : public ::testing::TestWithParam<std::tuple<const char*, const char*, const char*>> {};

TEST_P(EveryWay, TasksCrossTheBoundaryAndVerify) {
  const auto [start_method, codec, transport] = GetParam();
  const size_t fds = open_fds();
  {
    auto m = start(
        2,
        {{"start", start_method}, {"codec", codec}, {"transport", transport}, {"inflight", "4"}});
    for (const char* payload : {"0", "1000", "200000"}) {
      SCOPED_TRACE(payload);
      const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "13"}, {"payload_bytes", payload}});
      const Batch b = batch_of(ts, 2);
      const BatchResult r = m->run(b);
      expect_all_verified(r, ts, b);
      EXPECT_EQ(r.latency_ns.size(), 26u);
      EXPECT_GT(r.model_metrics["bytes_sent"].get<uint64_t>(), 0u);
    }
    // Steps travel too: CPU and IO steps run in the worker, against its own echo server.
    for (const char* wl : {"cpu.spin", "io.pipe_echo"}) {
      const TaskSet ts = tasks_of(wl, {{"tasks", "6"}, {"units", "10"}});
      const Batch b = batch_of(ts);
      expect_all_verified(m->run(b), ts, b);
    }
    for (const char* io : {"tcp_echo", "file_read"}) {
      const TaskSet ts = tasks_of("mixed.cpu_io", {{"tasks", "6"}, {"cpu_us", "10"}, {"io", io}});
      const Batch b = batch_of(ts);
      expect_all_verified(m->run(b), ts, b);
    }
    m->teardown();
  }
  EXPECT_FALSE(has_children());
  EXPECT_EQ(open_fds(), fds);
}

INSTANTIATE_TEST_SUITE_P(ProcessPool, EveryWay,
                         ::testing::Values(std::make_tuple("fork", "raw", "pipe"),
                                           std::make_tuple("fork", "json", "pipe"),
                                           std::make_tuple("fork", "cbor", "shm"),
                                           std::make_tuple("fork", "msgpack", "pipe"),
                                           std::make_tuple("fork", "raw", "shm"),
                                           std::make_tuple("spawn", "raw", "pipe"),
                                           std::make_tuple("spawn", "msgpack", "shm")));

TEST(ProcessPool, EveryInjectedFaultFailsItsTaskAndTheRunGoesOn) {
  for (const char* fault : {"kill", "segv", "exit", "garble", "truncate"}) {
    SCOPED_TRACE(fault);
    const size_t fds = open_fds();
    {
      auto m = start(2, {{"inject", std::string(fault) + ":0.2"}, {"inflight", "3"}});
      const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "50"}});
      const Batch b = batch_of(ts);
      const BatchResult r = m->run(b);
      ASSERT_FALSE(r.failures.empty());
      EXPECT_LT(r.failures.size(), 30u);
      size_t done = 0;
      for (size_t k = 0; k < r.done.size(); ++k) {
        if (!r.done[k]) continue;
        ++done;
        EXPECT_EQ(r.checksums[k], expected_checksum(ts, b, k));
      }
      EXPECT_EQ(done + r.failures.size(), 50u);  // every task either verified or failed
      const std::map<std::string, std::string> expected_reason = {{"kill", "signal 9"},
                                                                  {"segv", "signal 11"},
                                                                  {"exit", "status 3"},
                                                                  {"garble", "malformed"},
                                                                  {"truncate", "truncated"}};
      const std::string& why = r.failures[0].reason;
      EXPECT_NE(why.find(expected_reason.at(fault)), std::string::npos) << why;
      m->teardown();
    }
    EXPECT_FALSE(has_children());
    EXPECT_EQ(open_fds(), fds);
  }
}

TEST(ProcessPool, AHungWorkerIsKilledAtTheTaskTimeout) {
  auto m = start(1, {{"inject", "hang:1"}, {"task_timeout_ms", "200"}, {"inflight", "2"}});
  const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "3"}});
  const auto t0 = std::chrono::steady_clock::now();
  const BatchResult r = m->run(Batch{&ts.tasks, 1});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  ASSERT_EQ(r.failures.size(), 3u);
  EXPECT_NE(r.failures[0].reason.find("task_timeout_ms"), std::string::npos)
      << r.failures[0].reason;
  EXPECT_EQ(r.model_metrics["worker_replacements"], 3);
  m->teardown();
  EXPECT_FALSE(has_children());
}

TEST(ProcessPool, AHundredCrashesAreAHundredFailedTasks) {
  const size_t fds = open_fds();
  {
    auto m = start(2, {{"inject", "kill:1"}});
    const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "100"}});
    const BatchResult r = m->run(Batch{&ts.tasks, 1});
    EXPECT_EQ(r.failures.size(), 100u);
    EXPECT_EQ(r.model_metrics["worker_replacements"], 100);
    m->teardown();
  }
  EXPECT_FALSE(has_children());
  EXPECT_EQ(open_fds(), fds);
}

TEST(ProcessPool, CancelReturnsPromptlyAndTeardownReapsEveryone) {
  auto m = start(2, {});
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "4"}, {"sleep_us", "30000000"}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    m->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  m->run(Batch{&ts.tasks, 1});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  canceller.join();
  m->teardown();
  EXPECT_FALSE(has_children());
}

TEST(ProcessPool, WorkersCountTheirOwnTasks) {
  auto m = start(1, {});
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "5"}, {"sleep_us", "2000"}});
  const Batch b = batch_of(ts);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  // Five sleeps in the worker: its voluntary switches come back with the responses.
  ASSERT_TRUE(r.counters.has(Counter::voluntary_context_switches));
  EXPECT_GE(*r.counters.get(Counter::voluntary_context_switches), 5u);
  EXPECT_GT(r.model_metrics["startup_ns"].get<uint64_t>(), 0u);
  m->teardown();
}

// The bench_runner built with this test (the same directory), or CONCBENCH_WORKER_EXE.
std::string bench_runner_path() {
  if (const char* env = std::getenv("CONCBENCH_WORKER_EXE"); env && *env) return env;
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "bench_runner").string();
}

std::string page_faults_unavailable() {
  const CounterProbe& p = counter_probe();
  if (p.available(Counter::page_faults)) return "";
  const auto it = p.unavailable.find("page_faults");
  return "page_faults unavailable: " + (it == p.unavailable.end() ? "?" : it->second);
}

constexpr double kMaxFaultsPerTask = 10;

// Issue 15 part 1: bench_runner's allocator policy once froze glibc's mmap threshold at 128 KiB,
// so every payload of 128 KiB or more was mmap'ed and unmapped per task and its pages faulted in
// again (~1 fault per 4 KiB page and side: 1042 per task at 2 MiB). The policy is now the same in
// every entry point and the buffers persist, so a warm repetition faults (almost) never. Driven
// through the real entry point, since that is where the policy lives.
TEST(ProcessPool, BenchRunnerFaultsNoPagesPerTaskAtLargePayloads) {
  if (const std::string why = page_faults_unavailable(); !why.empty()) GTEST_SKIP() << why;
  const std::string out = ::testing::TempDir() + "concbench-faults-" + std::to_string(getpid());
  for (const char* payload : {"2097152", "4194304"}) {
    SCOPED_TRACE(payload);
    const std::string cmd = bench_runner_path() +
                            " run --workloads cpu.spin --models process_pool --workers 2"
                            " --repetitions 4 --min-time 0 --param tasks=16 --param units=100"
                            " --param payload_bytes=" +
                            payload + " --overwrite --out " + out + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(out);
    const nlohmann::json report = nlohmann::json::parse(f);
    const nlohmann::json& cell = report.at("results").at(0);
    ASSERT_EQ(cell.at("status"), "ok") << cell.dump().substr(0, 400);
    const nlohmann::json& reps = cell.at("repetitions");
    ASSERT_EQ(reps.size(), 4u);
    for (size_t i = 1; i < reps.size(); ++i) {  // the first measured repetition may still warm up
      const nlohmann::json& pf = reps[i].at("counters").at("page_faults");
      ASSERT_TRUE(pf.is_number()) << reps[i].at("counters").dump();
      const double per_task = pf.get<double>() / reps[i].at("tasks").get<double>();
      EXPECT_LT(per_task, kMaxFaultsPerTask) << "repetition " << i;
    }
  }
  std::remove(out.c_str());
}

// The same in this process, with the policy every entry point applies: the parent's and the
// workers' buffers persist across tasks and batches (the counters sum both sides).
TEST(ProcessPool, WarmBatchesFaultNoPagesPerTaskAtLargePayloads) {
  if (const std::string why = page_faults_unavailable(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_TRUE(apply_process_settings().allocator_applied) << apply_process_settings().allocator;
  for (const char* transport : {"pipe", "shm"}) {
    auto m = start(2, {{"transport", transport}});
    for (const char* payload : {"2097152", "4194304"}) {
      SCOPED_TRACE(std::string(transport) + " " + payload);
      const TaskSet ts =
          tasks_of("cpu.spin", {{"tasks", "16"}, {"units", "100"}, {"payload_bytes", payload}});
      for (int rep = 0; rep < 4; ++rep) {
        const Batch b = batch_of(ts);
        const BatchResult r = m->run(b);
        expect_all_verified(r, ts, b);
        ASSERT_TRUE(r.counters.has(Counter::page_faults));
        const double per_task = static_cast<double>(*r.counters.get(Counter::page_faults)) /
                                static_cast<double>(b.items());
        if (rep >= 1) {
          EXPECT_LT(per_task, kMaxFaultsPerTask) << "batch " << rep;
        }
      }
    }
    m->teardown();
  }
}

TEST(ProcessPool, BadInjectionIsRefusedUpFront) {
  const ModelInfo& info = *find_model("process_pool");
  for (const char* bad : {"explode:0.1", "kill", "kill:2", "kill:x"})
    EXPECT_THROW(info.validate(Params::resolve(info.params, {{"inject", bad}}, "process_pool")),
                 UsageError)
        << bad;
}

}  // namespace
}  // namespace concbench
