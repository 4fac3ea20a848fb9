// process_pool: tasks cross the process boundary under every codec, transport and start method;
// injected faults fail their task and nothing else; no zombie or descriptor survives.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
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

// The workers' counts must come back: CPU-bound tasks in one worker give a task clock that the
// parent, asleep in poll() meanwhile, cannot have produced (its own CPU over the same span is
// known), and the worker's CPU time arrives as child CPU.
TEST(ProcessPool, WorkersCountTheirOwnTasks) {
  const CounterProbe& probe = counter_probe();
  ASSERT_TRUE(probe.available(Counter::task_clock_ns) || probe.unavailable.count("task_clock_ns"))
      << "an unavailable counter must carry its reason";
  if (!probe.available(Counter::task_clock_ns))
    GTEST_SKIP() << "task_clock_ns: " << probe.unavailable.at("task_clock_ns");
  auto m = start(1, {});
  const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "5"}, {"units", "16000"}});
  const Batch b = batch_of(ts);
  const BatchResult r = m->run(b);
  expect_all_verified(r, ts, b);
  ASSERT_TRUE(r.span.set);
  ASSERT_TRUE(r.counters.has(Counter::task_clock_ns));
  const uint64_t task_clock = *r.counters.get(Counter::task_clock_ns);
  const uint64_t parent_cpu = r.span.cpu_user_ns + r.span.cpu_sys_ns;
  ASSERT_TRUE(r.has_child_cpu);
  const uint64_t child = r.child_cpu_user_ns + r.child_cpu_sys_ns;
  // All of the tasks' CPU time is the worker's: at least half of what the same tasks cost run
  // here, on this thread (CPU time, not wall, so a busy machine changes neither). A fixed
  // 20 ms bound missed by 0.3% under ASan on a fast machine.
  std::atomic<uint32_t> breaker{0};
  IoEnv io;
  ExecContext ctx{breaker, no_lock_hooks(), &io, 0};
  const uint64_t c0 = thread_cpu_ns();
  for (const Task& t : ts.tasks) (void)execute_task(t, ctx, 0);
  const uint64_t here = thread_cpu_ns() - c0;
  EXPECT_GT(child, here / 2) << "child " << child << " here " << here;
  // Both sides' task clocks are in the sum; the parent's share is what its span's CPU says
  // (plus the flush, a few syscalls), so most of it can only be the worker's.
  EXPECT_GT(task_clock, parent_cpu + child / 2)
      << "task_clock " << task_clock << " parent " << parent_cpu << " child " << child;
  EXPECT_GT(r.model_metrics["startup_ns"].get<uint64_t>(), 0u);
  m->teardown();
}

// Issue 15 part 7: the parent checks the payload that comes back against what it sent; a worker
// that corrupts it fails that task, however the payload travels.
TEST(ProcessPool, ACorruptedEchoFailsItsTask) {
  for (const char* transport : {"pipe", "shm"}) {
    for (const char* payload : {"0", "1000"}) {
      SCOPED_TRACE(std::string(transport) + " payload " + payload);
      auto m = start(2, {{"inject", "corrupt:0.3"}, {"transport", transport}});
      const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "40"}, {"payload_bytes", payload}});
      const Batch b = batch_of(ts);
      const BatchResult r = m->run(b);
      ASSERT_FALSE(r.failures.empty());
      EXPECT_LT(r.failures.size(), 30u);
      for (const TaskFailure& f : r.failures)
        EXPECT_NE(f.reason.find("payload echoed back differs"), std::string::npos) << f.reason;
      size_t done = 0;
      for (size_t k = 0; k < r.done.size(); ++k) {
        if (!r.done[k]) continue;
        ++done;
        EXPECT_EQ(r.checksums[k], expected_checksum(ts, b, k));
      }
      EXPECT_EQ(done + r.failures.size(), 40u);
      EXPECT_EQ(r.model_metrics["worker_replacements"], 0);  // a wrong answer kills nobody
      m->teardown();
    }
  }
}

// Issue 15 part 3: the model's own span is set, lies within run(), and the parent reads no clock
// per item on a large batch (latency is sampled and says so).
TEST(ProcessPool, TheSpanIsSetAndLatencyIsSampled) {
  auto m = start(2, {});
  const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "100"}});
  Batch b = batch_of(ts, 20);  // 2000 items
  b.latency_stride = 8;        // as the runner picks it; the model samples the items it names
  const uint64_t t0 = monotonic_ns();
  const BatchResult r = m->run(b);
  const uint64_t wall = monotonic_ns() - t0;
  expect_all_verified(r, ts, b);
  ASSERT_TRUE(r.span.set);
  EXPECT_GT(r.span.wall_ns, 0u);
  EXPECT_LE(r.span.wall_ns, wall);
  const auto& sampling = r.model_metrics.at("latency_sampling");
  EXPECT_EQ(sampling.at("items"), 2000);
  EXPECT_EQ(sampling.at("every"), 8);
  EXPECT_EQ(sampling.at("samples"), r.latency_ns.size());
  EXPECT_EQ(r.latency_ns.size(), 250u);
  // A small batch is timed item by item.
  const TaskSet small = tasks_of("overhead.noop", {{"tasks", "10"}});
  const Batch sb = batch_of(small);
  const BatchResult rs = m->run(sb);
  EXPECT_EQ(rs.latency_ns.size(), 10u);
  EXPECT_EQ(rs.model_metrics.at("latency_sampling").at("every"), 1);
  m->teardown();
}

#if defined(__linux__)
// Busy time (user+nice+system+irq+softirq+steal, in clock ticks) of the CPUs in `cpus`.
uint64_t busy_ticks(const std::vector<int>& cpus) {
  std::ifstream f("/proc/stat");
  std::string line;
  uint64_t sum = 0;
  while (std::getline(f, line)) {
    int id = -1;
    unsigned long long v[8] = {};
    if (std::sscanf(line.c_str(), "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &v[0],
                    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9)
      continue;
    if (std::find(cpus.begin(), cpus.end(), id) == cpus.end()) continue;
    sum += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // not idle (3) or iowait (4)
  }
  return sum;
}

uint64_t rusage_ns(int who) {
  rusage ru{};
  if (getrusage(who, &ru) != 0) return 0;
  auto ns = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
           static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

// Issue 15 part 4: a parent's getrusage never sees its live workers, so process_pool's CPU/wall
// read 0.00 for CPU-bound cells. With the workers' own CPU time returned, two CPU-bound workers
// show CPU/wall near 2 -- provided two CPUs were free for them. Whether they were is measured
// over the same interval, not assumed: the CPUs' busy time from /proc/stat less this process
// tree's own (this process, plus its workers once reaped, from RUSAGE_CHILDREN -- independent of
// the mechanism under test) is what everyone else used. When that could have taken the CPU/wall
// below 1.5, the test is skipped with the figures; otherwise a ratio below 1.5 is a failure.
TEST(ProcessPool, ChildCpuCoversTheWorkers) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  if (cpus.size() < 2) GTEST_SKIP() << "needs 2 CPUs; this process may use " << cpus.size();
  if (std::ifstream q("/sys/fs/cgroup/cpu.max"); q) {
    std::string quota;
    double period = 0;
    if (q >> quota >> period && quota != "max" && std::stod(quota) / period < 2)
      GTEST_SKIP() << "the cgroup's CPU quota is " << std::stod(quota) / period << " CPUs";
  }
  const double tick_ns = 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
  const uint64_t busy0 = busy_ticks(cpus);
  const uint64_t self0 = rusage_ns(RUSAGE_SELF), children0 = rusage_ns(RUSAGE_CHILDREN);
  const uint64_t t0 = monotonic_ns();
  BatchResult r;
  {
    auto m = start(2, {});
    const TaskSet ts = tasks_of("cpu.spin", {{"tasks", "16"}, {"units", "80000"}});
    const Batch b = batch_of(ts);
    r = m->run(b);
    expect_all_verified(r, ts, b);
    m->teardown();  // reaps the workers: their CPU time reaches RUSAGE_CHILDREN
  }
  const uint64_t interval = monotonic_ns() - t0;
  const double busy = static_cast<double>(busy_ticks(cpus) - busy0) * tick_ns;
  const double ours =
      static_cast<double>(rusage_ns(RUSAGE_SELF) - self0 + rusage_ns(RUSAGE_CHILDREN) - children0);
  const double others = std::max(0.0, busy - ours);
  ASSERT_TRUE(r.span.set);
  const double span = static_cast<double>(r.span.wall_ns);
  // Even if all of the others' CPU time fell inside the span, 1.5 CPUs and a margin were free.
  if (others > 0.3 * span)
    GTEST_SKIP() << "the machine was busy: other processes used " << others / 1e6
                 << " ms of CPU on these " << cpus.size() << " CPUs over " << interval / 1e6
                 << " ms, the batch's span was " << span / 1e6 << " ms";
  ASSERT_TRUE(r.has_child_cpu);
  const double cpu = static_cast<double>(r.span.cpu_user_ns + r.span.cpu_sys_ns +
                                         r.child_cpu_user_ns + r.child_cpu_sys_ns);
  EXPECT_GE(cpu / span, 1.5) << "CPU " << cpu / 1e6 << " ms over a span of " << span / 1e6
                             << " ms; child " << (r.child_cpu_user_ns + r.child_cpu_sys_ns) / 1e6
                             << " ms";
  // The workers' reports cannot exceed what the kernel says they used over their lives.
  EXPECT_LE(static_cast<double>(r.child_cpu_user_ns + r.child_cpu_sys_ns),
            static_cast<double>(rusage_ns(RUSAGE_CHILDREN) - children0) + 20e6);
}
#endif

// The bench_runner built with this test (the same directory), or CONCBENCH_WORKER_EXE.
std::string bench_runner_path() {
  if (const char* env = std::getenv("CONCBENCH_WORKER_EXE"); env && *env) return env;
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "bench_runner").string();
}

std::string page_faults_unavailable() {
  // Under a sanitizer the allocator is the sanitizer's, which maps and poisons large blocks
  // itself: the glibc policy these tests are about is not the one in force.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return "built with a sanitizer: its allocator, not glibc's, serves the payloads";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return "built with a sanitizer: its allocator, not glibc's, serves the payloads";
#endif
#endif
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
    // Exit status 1 (a cell did not verify) still leaves a report with the counters: this test
    // is about faults, and verification is the runner's (tested elsewhere).
    const int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) <= 1) << cmd << ": " << status;
    std::ifstream f(out);
    const nlohmann::json report = nlohmann::json::parse(f);
    const nlohmann::json& cell = report.at("results").at(0);
    ASSERT_NE(cell.at("status"), "error") << cell.dump().substr(0, 400);
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
  for (const char* bad : {"explode:0.1", "kill", "kill:2", "kill:x", "corrupt"})
    EXPECT_THROW(info.validate(Params::resolve(info.params, {{"inject", bad}}, "process_pool")),
                 UsageError)
        << bad;
}

}  // namespace
}  // namespace concbench
