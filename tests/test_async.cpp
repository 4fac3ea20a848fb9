// The event-loop models and the LoopTask they are built on: IO is awaited and overlaps, CPU
// work blocks the loop (the lag monitor sees it), max_inflight is honoured, every IO step kind
// verifies, and frames are never leaked or resumed after their loop is gone.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "concbench/clock.hpp"
#include "concbench/loop_task.hpp"
#include "concbench/model.hpp"
#include "concbench/workload.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

using Executor = asio::io_context::executor_type;

using testing_helpers::expected_item;
using testing_helpers::start;

TaskSet tasks_of(const char* workload, std::map<std::string, std::string> given) {
  return testing_helpers::tasks_of(workload, given, 5);
}

void expect_all_verified(const BatchResult& r, const TaskSet& ts) {
  for (size_t k = 0; k < r.done.size(); ++k) {
    EXPECT_TRUE(r.done[k]) << k;
    EXPECT_EQ(r.checksums[k], expected_item(ts, k)) << k;
  }
  for (const auto& f : r.failures) ADD_FAILURE() << f.item << ": " << f.reason;
}

class AsyncModels : public ::testing::TestWithParam<std::tuple<const char*, int>> {};

TEST_P(AsyncModels, EveryIoStepKindIsAwaitedAndVerifies) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers);
  for (const char* io : {"sleep", "pipe_echo", "tcp_echo", "file_read"}) {
    SCOPED_TRACE(io);
    const TaskSet ts = tasks_of("mixed.cpu_io", {{"tasks", "12"},
                                                 {"cpu_us", "20"},
                                                 {"io_us", "300"},
                                                 {"io", io},
                                                 {"io_bytes", "70000"},
                                                 {"round_trips", "3"}});
    BatchResult r = m->run(Batch{&ts.tasks, 2});
    ASSERT_EQ(r.done.size(), 24u);
    expect_all_verified(r, ts);
    EXPECT_EQ(r.latency_ns.size(), 24u);
    if (std::string(io) == "file_read") {
      EXPECT_EQ(r.model_metrics["file_reads_offloaded"], 24);
    }
  }
  m->teardown();
}

TEST_P(AsyncModels, SleepsOverlapAcrossEveryTaskInFlight) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers);
  // 200 sleeps of 20 ms: 4 s one after another. All in flight at once they take about 20 ms;
  // the bound leaves a factor of 10 for a loaded machine.
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "200"}, {"sleep_us", "20000"}});
  const uint64_t t0 = monotonic_ns();
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  const uint64_t wall = monotonic_ns() - t0;
  expect_all_verified(r, ts);
  EXPECT_LT(wall, 400'000'000u);
  EXPECT_EQ(r.model_metrics["max_inflight"], 200);
  m->teardown();
}

TEST_P(AsyncModels, MaxInflightBoundsConcurrency) {
  const auto [name, workers] = GetParam();
  auto m = start(name, workers, {{"max_inflight", "4"}});
  // 40 sleeps of 10 ms, at most 4 at a time: at least 10 waves, so at least 100 ms. A lower
  // bound no amount of machine noise can break.
  const TaskSet ts = tasks_of("io.sleep", {{"tasks", "40"}, {"sleep_us", "10000"}});
  const uint64_t t0 = monotonic_ns();
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  const uint64_t wall = monotonic_ns() - t0;
  expect_all_verified(r, ts);
  EXPECT_GE(wall, 100'000'000u);
  EXPECT_EQ(r.model_metrics["max_inflight"], 4);
  m->teardown();
}

INSTANTIATE_TEST_SUITE_P(Loops, AsyncModels,
                         ::testing::Values(std::make_tuple("async", 1),
                                           std::make_tuple("async_mt", 2),
                                           std::make_tuple("async_mt", 4)));

TEST(Async, IsOneLoopThreadWhateverWorkersSays) {
  EXPECT_TRUE(find_model("async")->single_worker);
  EXPECT_FALSE(find_model("async_mt")->single_worker);
  auto m = start("async", 8);
  const TaskSet ts = tasks_of("overhead.noop", {{"tasks", "50"}});
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  expect_all_verified(r, ts);
  EXPECT_EQ(r.model_metrics["loop_threads"], 1);
  EXPECT_EQ(r.model_metrics["workers"].size(), 1u);
  m->teardown();
}

TEST(Async, ACpuStepBlocksTheLoopAndTheLagMonitorSeesIt) {
  // One task spins about 30 ms without awaiting; the 1 ms lag timer cannot fire meanwhile, so
  // its worst lateness is most of that. (A lower bound: noise only makes it larger.)
  auto m = start("async", 1);
  const TaskSet ts =
      tasks_of("mixed.cpu_io", {{"tasks", "1"}, {"cpu_us", "30000"}, {"io_us", "0"}});
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  expect_all_verified(r, ts);
  const auto& lag = r.model_metrics["loop_lag"];
  ASSERT_GE(lag["samples"].get<int>(), 1);
  EXPECT_GE(lag["max_ns"].get<uint64_t>(), 20'000'000u);
  m->teardown();
}

TEST(Async, OneSpinnerStallsTheResponderOnOneLoopButNotOnTwoThreads) {
  const std::map<std::string, std::string> p = {
      {"round_trips", "20"}, {"cpu_workers", "1"}, {"max_cpu_units", "150000"}};
  const TaskSet ts = tasks_of("latency.echo_under_load", p);
  const Workload& w = *find_workload("latency.echo_under_load");
  const Params wp = Params::resolve(w.params(), p, "w");
  uint64_t worst[2] = {0, 0};
  int i = 0;
  for (auto [name, workers] : {std::make_pair("async", 1), std::make_pair("async_mt", 2)}) {
    SCOPED_TRACE(name);
    auto m = start(name, workers);
    BatchResult r = m->run(Batch{&ts.tasks, 1});
    expect_all_verified(r, ts);
    const auto metrics = w.metrics(wp, 2, 1, r.observations);
    EXPECT_EQ(metrics["round_trips"], 20);
    EXPECT_EQ(metrics["cpu_workers_running"], 1);
    worst[i++] = metrics["rtt_max_ns"].get<uint64_t>();
    m->teardown();
  }
  // On one loop the first round trip waits for the whole spinner (150k units, tens of ms);
  // with a second loop thread the responder runs beside it.
  EXPECT_GE(worst[0], 10'000'000u);
  EXPECT_GT(worst[0], 10 * worst[1]);
}

TEST(Async, CancellingMidEchoLeavesNothingRunning) {
  // The responder is suspended in a read while the spinner holds the only loop thread; cancel
  // stops both, and teardown destroys the suspended frames (joining the echo client thread).
  auto m = start("async", 1);
  const TaskSet ts =
      tasks_of("latency.echo_under_load", {{"round_trips", "20"}, {"max_cpu_units", "100000000"}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    m->cancel();
  });
  const uint64_t t0 = monotonic_ns();
  BatchResult r = m->run(Batch{&ts.tasks, 1});
  canceller.join();
  EXPECT_LT(monotonic_ns() - t0, 5'000'000'000u);
  for (auto d : r.done) EXPECT_FALSE(d);
  m->teardown();
  // A cancelled model runs nothing more.
  BatchResult again = m->run(Batch{&ts.tasks, 1});
  for (auto d : again.done) EXPECT_FALSE(d);
}

// --- LoopTask itself ---

struct Tracker {
  int* live;
  explicit Tracker(int* l) : live(l) { ++*live; }
  ~Tracker() { --*live; }
};

LoopTask<int> child(bool fail) {
  if (fail) throw std::runtime_error("child failed");
  co_return 42;
}

LoopTask<void> parent(int* out, bool fail) {
  try {
    *out = co_await child(fail);
  } catch (const std::runtime_error&) {
    *out = -1;
  }
}

TEST(LoopTask, AwaitedValuesAndExceptionsReachTheAwaiter) {
  asio::io_context ioc(1);
  int a = 0, b = 0;
  spawn(ioc.get_executor(), parent(&a, false));
  spawn(ioc.get_executor(), parent(&b, true));
  ioc.run();
  EXPECT_EQ(a, 42);
  EXPECT_EQ(b, -1);
}

LoopTask<void> thrower() {
  throw std::logic_error("escaped");
  co_return;
}

TEST(LoopTask, ASpawnedTasksEscapingExceptionGoesToItsCallback) {
  asio::io_context ioc(1);
  std::string seen;
  spawn(
      ioc.get_executor(), thrower(),
      [](void* ctx, std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          *static_cast<std::string*>(ctx) = ex.what();
        }
      },
      &seen);
  ioc.run();
  EXPECT_EQ(seen, "escaped");
}

LoopTask<void> waits_forever_inner(asio::steady_timer& t, int* live) {
  Tracker tr(live);
  t.expires_after(std::chrono::hours(1));
  co_await t.async_wait(use_loop_task);
  ADD_FAILURE() << "resumed after its loop was destroyed";
}

LoopTask<void> waits_forever(asio::steady_timer& t, int* live) {
  Tracker tr(live);
  co_await waits_forever_inner(t, live);
}

TEST(LoopTask, DestroyingTheLoopDestroysEverySuspendedFrame) {
  int live = 0;
  {
    asio::io_context ioc(1);
    asio::steady_timer timer(ioc);
    spawn(ioc.get_executor(), waits_forever(timer, &live));
    ioc.run_for(std::chrono::milliseconds(20));
    EXPECT_EQ(live, 2);  // both frames suspended, each with its tracker
  }
  EXPECT_EQ(live, 0);
}

LoopTask<void> timed(Executor ex, uint64_t* waited) {
  asio::basic_waitable_timer<std::chrono::steady_clock,
                             asio::wait_traits<std::chrono::steady_clock>, Executor>
      t(ex);
  const uint64_t t0 = monotonic_ns();
  t.expires_after(std::chrono::milliseconds(5));
  co_await t.async_wait(use_loop_task);
  *waited = monotonic_ns() - t0;
}

TEST(LoopTask, AwaitsAnAsioTimer) {
  asio::io_context ioc(1);
  uint64_t waited = 0;
  spawn(ioc.get_executor(), timed(ioc.get_executor(), &waited));
  ioc.run();
  EXPECT_GE(waited, 5'000'000u);
}

}  // namespace
}  // namespace concbench
