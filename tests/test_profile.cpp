// Profiles (workloads as data): the format's good and bad files, deterministic draws, and a
// profile run end to end under every C++ model, where a model that sleeps short fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "concbench/checksum.hpp"
#include "concbench/config.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/model.hpp"
#include "concbench/profile.hpp"
#include "concbench/runner.hpp"
#include "model_helpers.hpp"

namespace concbench {
namespace {

namespace fs = std::filesystem;

struct Env {
  std::atomic<uint32_t> breaker{0};
  IoEnv io;
  ExecContext ctx{breaker, no_lock_hooks(), &io, 0};
};

fs::path scratch() {
  static const fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("concbench-profile-" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p;
}

TaskSet tasks_of(const Workload& w, std::map<std::string, std::string> given, uint64_t seed) {
  return w.make_tasks(Params::resolve(w.params(), given, std::string(w.name())), seed);
}

void expect_all_verify(const TaskSet& ts) {
  Env env;
  for (size_t i = 0; i < ts.tasks.size(); ++i)
    EXPECT_EQ(execute_task(ts.tasks[i], env.ctx, 11).checksum, seal(ts.expected[i], 11))
        << "task " << i;
}

TEST(Profile, FixedValuesBecomeTheStepsTheySay) {
  const auto w = parse_profile(R"({"name": "t.fixed", "tasks": 3, "payload_bytes": 100,
    "steps": [{"cpu": {"us": 50}}, {"sleep": {"us": 20.5}},
              {"pipe_echo": {"round_trips": 2, "bytes": 300}},
              {"tcp_echo": {"bytes": {"fixed": 64}}}, {"file_read": {"bytes": 4096}},
              {"cpu": {"us": 30, "kernel": "sha256", "native": true}}]})",
                               "fixed.json");
  EXPECT_EQ(w->name(), "t.fixed");
  EXPECT_EQ(w->origin(), "profile");
  const TaskSet ts = tasks_of(*w, {}, 5);
  ASSERT_EQ(ts.tasks.size(), 3u);
  for (const Task& t : ts.tasks) {
    EXPECT_EQ(t.payload.size(), 100u);
    ASSERT_EQ(t.steps.size(), 6u);
    EXPECT_EQ(t.steps[0].kind, StepKind::cpu);
    EXPECT_EQ(t.steps[0].kernel, kernel_id("spin"));
    EXPECT_FALSE(t.steps[0].native);
    EXPECT_NEAR(static_cast<double>(t.steps[0].units), 50 * spin_units_per_us(), 1.0);
    EXPECT_EQ(t.steps[1].kind, StepKind::sleep);
    EXPECT_EQ(t.steps[1].duration_ns, 20500u);
    EXPECT_EQ(t.steps[2].kind, StepKind::pipe_echo);
    EXPECT_EQ(t.steps[2].units, 2u);
    EXPECT_EQ(t.steps[2].bytes, 300u);
    EXPECT_EQ(t.steps[3].kind, StepKind::tcp_echo);
    EXPECT_EQ(t.steps[3].units, 1u);  // round_trips defaults to 1
    EXPECT_EQ(t.steps[3].bytes, 64u);
    EXPECT_EQ(t.steps[4].kind, StepKind::file_read);
    EXPECT_EQ(t.steps[4].bytes, 4096u);
    EXPECT_EQ(t.steps[5].kernel, kernel_id("sha256"));
    EXPECT_TRUE(t.steps[5].native);
    EXPECT_GT(t.steps[5].units, 0u);
  }
  expect_all_verify(ts);
  EXPECT_NE(ts.expected[0], ts.expected[1]);
  // --param overrides what the file set.
  EXPECT_EQ(tasks_of(*w, {{"tasks", "5"}, {"payload_bytes", "7"}}, 5).tasks.at(4).payload.size(),
            7u);
}

TEST(Profile, DistributionsDrawWithinTheirBoundsPerTask) {
  const auto w = parse_profile(R"({"name": "t.dist", "tasks": 200,
    "steps": [{"sleep": {"us": {"exponential": {"mean": 50, "max": 120}}}},
              {"pipe_echo": {"round_trips": {"uniform": [1, 3]}, "bytes": {"uniform": [512, 8192]}}},
              {"sleep": {"us": {"uniform": [1.5, 2.5]}}},
              {"file_read": {"bytes": {"exponential": {"mean": 100, "max": 1000}}}}]})",
                               "dist.json");
  const TaskSet ts = tasks_of(*w, {}, 1);
  std::set<uint64_t> sleeps, sizes, trips;
  double sum = 0;
  for (const Task& t : ts.tasks) {
    ASSERT_EQ(t.steps.size(), 4u);
    EXPECT_LE(t.steps[0].duration_ns, 120'000u);
    sum += static_cast<double>(t.steps[0].duration_ns);
    sleeps.insert(t.steps[0].duration_ns);
    EXPECT_GE(t.steps[1].bytes, 512u);
    EXPECT_LE(t.steps[1].bytes, 8192u);
    EXPECT_GE(t.steps[1].units, 1u);
    EXPECT_LE(t.steps[1].units, 3u);
    sizes.insert(t.steps[1].bytes);
    trips.insert(t.steps[1].units);
    EXPECT_GE(t.steps[2].duration_ns, 1500u);
    EXPECT_LE(t.steps[2].duration_ns, 2500u);
    EXPECT_GE(t.steps[3].bytes, 1u);
    EXPECT_LE(t.steps[3].bytes, 1000u);
  }
  EXPECT_GT(sleeps.size(), 100u);  // drawn per task, not once
  EXPECT_GT(sizes.size(), 100u);
  EXPECT_EQ(trips.size(), 3u);  // both ends of an integer range are reached
  // The mean of min(X, 120) for X of mean 50 is 50 (1 - e^-2.4) = 45.5 us.
  EXPECT_NEAR(sum / 200 / 1000, 45.5, 6);
  const TaskSet few = tasks_of(*w, {{"tasks", "4"}}, 1);
  expect_all_verify(few);
  const nlohmann::json m =
      w->metrics(Params::resolve(w->params(), {}, "t.dist"), 200, 1'000'000, Observations{});
  EXPECT_NEAR(m["io_wait_us_per_task"].get<double>(), 50 * (1 - std::exp(-2.4)) + 2, 1e-9);
  EXPECT_EQ(m["cpu_us_per_task"].get<double>(), 0);
}

TEST(Profile, FragmentsExpandInPlaceAndDrawAtEachUse) {
  const auto w = parse_profile(R"({"name": "t.frag", "tasks": 2,
    "steps": [{"cpu": {"us": 5}}, {"use": "db_call", "times": 3}, {"use": "twice"}],
    "fragments": {"db_call": [{"tcp_echo": {"bytes": 256}},
                              {"sleep": {"us": {"uniform": [10, 1000]}}}],
                  "twice": [{"use": "db_call", "times": 2}]}})",
                               "frag.json");
  const TaskSet ts = tasks_of(*w, {}, 1);
  const Task& t = ts.tasks[0];
  ASSERT_EQ(t.steps.size(), 1u + 3 * 2 + 2 * 2);
  std::set<uint64_t> sleeps;
  for (size_t i = 1; i < t.steps.size(); i += 2) {
    EXPECT_EQ(t.steps[i].kind, StepKind::tcp_echo);
    EXPECT_EQ(t.steps[i + 1].kind, StepKind::sleep);
    sleeps.insert(t.steps[i + 1].duration_ns);
  }
  EXPECT_GT(sleeps.size(), 1u);
  expect_all_verify(ts);
}

TEST(Profile, TheExampleProfilesParse) {
  for (const char* f : {"handler.json", "cpu_sleep.json"}) {
    SCOPED_TRACE(f);
    std::ifstream in(fs::path(CONCBENCH_SOURCE_DIR) / "examples/profiles" / f);
    ASSERT_TRUE(in);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    const auto w = parse_profile(text, f);
    expect_all_verify(tasks_of(*w, {{"tasks", "2"}}, 1));
  }
}

// Every class of bad file, with the key path the message must name.
TEST(Profile, BadFilesNameTheFileAndTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "bad.json: not valid JSON at byte "},
      {R"({"name": "x", "steps": [)", "bad.json: not valid JSON at byte"},
      {"[1]", "bad.json: expected a JSON object"},
      {R"({"name": "x", "tasks": 1e999, "steps": [{"cpu": {"us": 1}}]})",
       "bad.json: not valid JSON ("},
      {R"({"steps": [{"cpu": {"us": 1}}]})", "bad.json: name: missing"},
      {R"({"name": "a b", "steps": [{"cpu": {"us": 1}}]})", "bad.json: name: must be"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1}}], "colour": 1})",
       "bad.json: colour: unknown key"},
      {R"({"name": "x", "name": "y", "steps": [{"cpu": {"us": 1}}]})", "duplicate key \"name\""},
      {R"({"name": "x"})", "bad.json: steps: missing"},
      {R"({"name": "x", "steps": []})", "bad.json: steps: empty list"},
      {R"({"name": "x", "steps": {}})", "bad.json: steps: expected a list"},
      {R"({"name": "x", "steps": [3]})", "bad.json: steps[0]: expected a step"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1}, "sleep": {"us": 1}}]})",
       "bad.json: steps[0]: a step has one key"},
      {R"({"name": "x", "steps": [{"nap": {"us": 1}}]})", "bad.json: steps[0].nap: unknown step"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1, "speed": 2}}]})",
       "bad.json: steps[0].cpu.speed: unknown key"},
      {R"({"name": "x", "steps": [{"cpu": {}}]})", "bad.json: steps[0].cpu.us: missing"},
      {R"({"name": "x", "steps": [{"cpu": 5}]})", "bad.json: steps[0].cpu: expected an object"},
      {R"({"name": "x", "steps": [{"cpu": {"us": "5"}}]})",
       "bad.json: steps[0].cpu.us: expected a number"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1, "kernel": "pidigits"}}]})",
       "bad.json: steps[0].cpu.kernel: expected \"spin\" or \"sha256\""},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1, "native": 1}}]})",
       "bad.json: steps[0].cpu.native: expected true or false"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1}}, {"sleep": {"us": 60000001}}]})",
       "bad.json: steps[1].sleep.us: must be at most 60000000 microseconds"},
      {R"({"name": "x", "steps": [{"sleep": {"us": -1}}]})",
       "bad.json: steps[0].sleep.us: must be at least 0 microseconds"},
      {R"({"name": "x", "steps": [{"sleep": {"us": 1e300}}]})",
       "steps[0].sleep.us: must be at most"},
      {R"({"name": "x", "steps": [{"file_read": {"bytes": 67108865}}]})",
       "bad.json: steps[0].file_read.bytes: must be at most 67108864 bytes"},
      {R"({"name": "x", "steps": [{"file_read": {"bytes": 0}}]})",
       "steps[0].file_read.bytes: must be at least 1 byte"},
      {R"({"name": "x", "steps": [{"file_read": {"bytes": 10.5}}]})",
       "steps[0].file_read.bytes: must be a whole number of bytes"},
      {R"({"name": "x", "steps": [{"pipe_echo": {"bytes": 8, "round_trips": 1000001}}]})",
       "bad.json: steps[0].pipe_echo.round_trips: must be at most 1000000 round trips"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"uniform": [5, 2]}}}]})",
       "bad.json: steps[0].sleep.us.uniform: lo must not be more than hi"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"uniform": [5]}}}]})",
       "steps[0].sleep.us.uniform: expected [lo, hi]"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"uniform": [0, 7e7]}}}]})",
       "steps[0].sleep.us.uniform[1]: must be at most 60000000 microseconds"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"exponential": {"mean": 5}}}}]})",
       "bad.json: steps[0].sleep.us.exponential.max: missing"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"exponential": {"mean": 0, "max": 5}}}}]})",
       "steps[0].sleep.us.exponential.mean: must be more than 0"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"gauss": 5}}}]})",
       "steps[0].sleep.us.gauss: unknown distribution"},
      {R"({"name": "x", "steps": [{"sleep": {"us": {"fixed": 1, "uniform": [1, 2]}}}]})",
       "steps[0].sleep.us: expected a number or one of"},
      {R"({"name": "x", "tasks": 0, "steps": [{"cpu": {"us": 1}}]})", "bad.json: tasks: must be"},
      {R"({"name": "x", "tasks": 100000001, "steps": [{"cpu": {"us": 1}}]})", "bad.json: tasks:"},
      {R"({"name": "x", "payload_bytes": -1, "steps": [{"cpu": {"us": 1}}]})",
       "bad.json: payload_bytes:"},
      {R"({"name": "x", "seed": 1.5, "steps": [{"cpu": {"us": 1}}]})", "bad.json: seed:"},
      {R"({"name": "x", "steps": [{"use": "nope"}]})",
       "bad.json: steps[0].use: no fragment 'nope' is defined"},
      {R"({"name": "x", "steps": [{"use": "a", "times": 10001}], "fragments": {"a": [{"cpu": {"us": 1}}]}})",
       "bad.json: steps[0].times: must be an integer in [1, 10000]"},
      {R"({"name": "x", "steps": [{"use": "a", "twice": true}], "fragments": {"a": [{"cpu": {"us": 1}}]}})",
       "bad.json: steps[0].twice: unknown key"},
      {R"({"name": "x", "steps": [{"use": "a"}],
           "fragments": {"a": [{"use": "b"}], "b": [{"use": "a"}]}})",
       "bad.json: fragments.a: cycle a -> b -> a"},
      {R"({"name": "x", "steps": [{"cpu": {"us": 1}}], "fragments": {"s": [{"use": "s"}]}})",
       "bad.json: fragments.s: cycle s -> s"},
      {R"({"name": "x", "steps": [{"use": "a"}], "fragments": {"a": []}})",
       "bad.json: fragments.a: empty list"},
      {R"({"name": "x", "steps": [{"use": "a"}], "fragments": {"a": [{"use": "zz"}]}})",
       "bad.json: fragments.a[0].use: no fragment 'zz' is defined"},
      {R"({"name": "x", "steps": [{"use": "a", "times": 10000}],
           "fragments": {"a": [{"use": "b", "times": 10000}], "b": [{"cpu": {"us": 1}}]}})",
       "bad.json: steps: a task expands to more than 100000 steps"},
      {R"({"name": "x", "steps": [{"use": "a", "times": 100}],
           "fragments": {"a": [{"cpu": {"us": 1}}, {"cpu": {"us": 1}}, {"use": "b", "times": 1000}],
                         "b": [{"sleep": {"us": 1}}]}})",
       "bad.json: steps: a task expands to more than 100000 steps"},
  };
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    try {
      parse_profile(text, "bad.json");
      ADD_FAILURE() << "accepted";
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(want), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_EQ(msg.rfind("bad.json: ", 0), 0u) << msg;
    }
  }
  // Exactly at the limits is fine.
  EXPECT_NO_THROW(parse_profile(R"({"name": "x", "steps": [{"use": "a", "times": 10}],
      "fragments": {"a": [{"use": "b", "times": 10000}], "b": [{"sleep": {"us": 60000000}}]}})",
                                "ok.json"));
}

TEST(Profile, DrawsDependOnlyOnTheSeedsAndTheTask) {
  const std::string text = R"({"name": "t.seeded", "tasks": 6, "seed": 9,
    "steps": [{"cpu": {"us": {"uniform": [1, 40]}}},
              {"sleep": {"us": {"exponential": {"mean": 30, "max": 300}}}}]})";
  const auto a = parse_profile(text, "a.json");
  const auto b = parse_profile(text, "b.json");
  const auto steps_of = [](const TaskSet& ts) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const Task& t : ts.tasks) out.emplace_back(t.steps[0].units, t.steps[1].duration_ns);
    return out;
  };
  const TaskSet ta = tasks_of(*a, {}, 4), tb = tasks_of(*b, {}, 4);
  EXPECT_EQ(steps_of(ta), steps_of(tb));
  EXPECT_EQ(ta.expected, tb.expected);
  // A task's draws do not depend on how many tasks the batch has.
  EXPECT_EQ(steps_of(tasks_of(*a, {{"tasks", "3"}}, 4))[2], steps_of(ta)[2]);
  // Another run seed or another profile seed draws other tasks.
  EXPECT_NE(steps_of(tasks_of(*a, {}, 5)), steps_of(ta));
  std::string reseeded = text;
  reseeded.replace(reseeded.find("\"seed\": 9"), 9, "\"seed\": 8");
  EXPECT_NE(steps_of(tasks_of(*parse_profile(reseeded, "c.json"), {}, 4)), steps_of(ta));
}

TEST(Profile, TwoModelsRunTheSameTasksAndBothVerify) {
  const auto w = parse_profile(R"({"name": "t.two", "tasks": 6, "payload_bytes": 32,
    "steps": [{"cpu": {"us": {"uniform": [10, 100]}}}, {"tcp_echo": {"bytes": {"uniform": [1, 900]}}},
              {"sleep": {"us": 50}}]})",
                               "two.json");
  const TaskSet ts = tasks_of(*w, {}, 2);
  for (const char* model : {"serial", "thread_pool"}) {
    SCOPED_TRACE(model);
    auto m = testing_helpers::start(model, model == std::string("serial") ? 1 : 2);
    const Batch batch{&ts.tasks, 2, 77};
    const BatchResult r = m->run(batch);
    ASSERT_EQ(r.checksums.size(), batch.items());
    for (uint64_t k = 0; k < batch.items(); ++k) {
      EXPECT_TRUE(r.done[k]);
      EXPECT_EQ(r.checksums[k], testing_helpers::expected_item(ts, batch, k)) << k;
    }
    m->teardown();
  }
}

const Workload& cpu_sleep_profile() {
  return load_profile_file(write_file("cpu_sleep.json", R"({"name": "test.cpu_sleep",
      "tasks": 8, "steps": [{"cpu": {"us": 1000}}, {"sleep": {"us": 1000}}]})")
                               .string());
}

TEST(Profile, EveryModelVerifiesAProfileAtOneAndTwoWorkers) {
  RunConfig c = suite_config("smoke");
  c.workloads = {std::string(cpu_sleep_profile().name())};
  c.models = {"serial",      "free_threads", "gil_threads", "thread_pool",
              "pinned_pool", "process_pool", "async",       "async_mt"};
  c.workers = {1, 2};
  c.repetitions = 1;
  c.min_time_s = 0;
  const auto cells = run_suite(c);
  EXPECT_EQ(cells.size(), expand_matrix(c).size());
  EXPECT_GE(cells.size(), 1u + 7 * 2 - 2);  // at most serial and async run at one worker only
  std::set<std::string> models;
  for (const auto& cell : cells) {
    SCOPED_TRACE(cell.model + "/" + std::to_string(cell.workers));
    models.insert(cell.model);
    EXPECT_EQ(cell.status, "ok") << cell.error;
    EXPECT_EQ(cell.workload_origin, "profile");
    ASSERT_EQ(cell.repetitions.size(), 1u);
    const RepetitionResult& r = cell.repetitions[0];
    EXPECT_TRUE(r.verified);
    EXPECT_EQ(r.tasks, 8u);
    EXPECT_DOUBLE_EQ(r.metrics["cpu_us_per_task"].get<double>(), 1000);
    EXPECT_DOUBLE_EQ(r.metrics["io_wait_us_per_task"].get<double>(), 1000);
    EXPECT_GT(r.metrics["overlap"].get<double>(), 0);
    EXPECT_DOUBLE_EQ(r.metrics["spin_units_per_us"].get<double>(), spin_units_per_us());
    EXPECT_FALSE(r.metrics.contains("sha256_units_per_us"));
  }
  EXPECT_EQ(models.size(), c.models.size());
}

// Models that do less than a profile asks. Sleeps are predicted by their duration, so only the
// runner's sleep bound catches a model that skips them; a skipped CPU step breaks the checksum.
// The bound is no stronger than the sleeps themselves: a task whose CPU outweighs its sleeps can
// hide a skipped sleep behind its CPU time, so the profile here is mostly sleep.
class Lazy : public Model {
 public:
  enum class Kind { sleeps_short, skips_cpu };
  explicit Lazy(Kind k) : kind_(k) {}
  BatchResult run(const Batch& batch) override {
    BatchResult r = BatchResult::for_batch(batch);
    ExecContext ctx(breaker_, no_lock_hooks(), nullptr, 0);
    for (uint64_t k = 0; k < batch.items(); ++k) {
      const Task& t = (*batch.tasks)[k % batch.tasks->size()];
      uint64_t h = task_checksum_start(t);
      for (size_t i = 0; i < t.steps.size(); ++i) {
        const Step& s = t.steps[i];
        if (s.kind == StepKind::sleep) {
          h = fold(h, s.duration_ns);
          if (kind_ == Kind::skips_cpu)
            std::this_thread::sleep_for(std::chrono::nanoseconds(s.duration_ns));
        } else if (kind_ == Kind::sleeps_short) {
          h = fold(h, run_cpu_step(s, t.seed, i, ctx));
        }
      }
      r.checksums[k] = seal(h, batch.item_nonce(k));
      r.done[k] = 1;
    }
    return r;
  }
  void cancel() override {}

 private:
  Kind kind_;
  std::atomic<uint32_t> breaker_{0};
};

TEST(Profile, AModelThatSleepsShortOrSkipsCpuFails) {
  for (auto [name, kind] : {std::pair{"test.profile_sleeps_short", Lazy::Kind::sleeps_short},
                            std::pair{"test.profile_skips_cpu", Lazy::Kind::skips_cpu}}) {
    if (find_model(name)) continue;
    ModelInfo info;
    info.name = name;
    info.single_worker = true;
    info.in_flight_per_worker = 1;
    info.create = [kind = kind] { return std::make_unique<Lazy>(kind); };
    register_model(info);
  }
  const Workload& w = load_profile_file(write_file("sleepy.json", R"({"name": "test.sleepy",
      "tasks": 4, "steps": [{"cpu": {"us": 100}}, {"sleep": {"us": 2000}}]})")
                                            .string());
  RunConfig c = suite_config("smoke");
  c.workloads = {std::string(w.name())};
  c.models = {"serial", "test.profile_sleeps_short", "test.profile_skips_cpu"};
  c.workers = {1};
  c.repetitions = 1;
  c.min_time_s = 0;
  const auto cells = run_suite(c);
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_EQ(cells[0].status, "ok") << cells[0].error;
  for (size_t i = 1; i < 3; ++i) {
    SCOPED_TRACE(cells[i].model);
    EXPECT_EQ(cells[i].status, "failed");
    ASSERT_FALSE(cells[i].repetitions.empty());
    EXPECT_FALSE(cells[i].repetitions[0].verified);
    ASSERT_FALSE(cells[i].repetitions[0].failure_samples.empty());
    EXPECT_NE(cells[i].repetitions[0].failure_samples[0].find(i == 1 ? "sleeps ended early"
                                                                     : "checksum mismatch"),
              std::string::npos)
        << cells[i].repetitions[0].failure_samples[0];
  }
}

TEST(Profile, LoadingAFileRegistersItOnce) {
  const fs::path p = write_file("once.json", R"({"name": "test.once", "tasks": 2,
      "steps": [{"cpu": {"us": 1}}]})");
  const Workload& w = load_profile_file(p.string());
  EXPECT_EQ(&load_profile_file(p.string()), &w);
  EXPECT_EQ(&load_profile_file((scratch() / "." / "once.json").string()), &w);  // same file
  EXPECT_EQ(find_workload("test.once"), &w);
  const fs::path other = write_file("other.json", R"({"name": "test.once",
      "steps": [{"sleep": {"us": 1}}]})");
  try {
    load_profile_file(other.string());
    ADD_FAILURE() << "a taken name was accepted";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(other.string() + ": name: workload 'test.once'", 0), 0u) << msg;
    EXPECT_NE(msg.find("once.json"), std::string::npos) << msg;  // the file that has it
  }
  const fs::path builtin = write_file("spin.json", R"({"name": "cpu.spin",
      "steps": [{"sleep": {"us": 1}}]})");
  EXPECT_THROW(load_profile_file(builtin.string()), UsageError);
  try {
    load_profile_file((scratch() / "missing.json").string());
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json: cannot read"), std::string::npos);
  }
  EXPECT_THROW(load_profile_file(scratch().string()), UsageError);
  // A profile is not part of a suite's defaults.
  for (const auto& name : suite_config("quick").workloads) EXPECT_NE(name, "test.once");
}

TEST(Profile, RequestsLoadWorkloadFiles) {
  const fs::path p = write_file("req.json", R"({"name": "test.req", "tasks": 3,
      "steps": [{"cpu": {"us": 1}}]})");
  const RunConfig only = config_from_request({{"workload_files", {p.string()}}});
  EXPECT_EQ(only.workloads, (std::vector<std::string>{"test.req"}));
  EXPECT_EQ(only.min_time_s, suite_config("quick").min_time_s);  // the suite's, not 0
  const RunConfig one = config_from_request({{"workload_files", p.string()}, {"suite", "smoke"}});
  EXPECT_EQ(one.workloads, (std::vector<std::string>{"test.req"}));
  const RunConfig named = config_from_request({{"workload_files", p.string()},
                                               {"workloads", "cpu.spin,test.req"},
                                               {"params", {{"tasks", 4}}}});
  EXPECT_EQ(named.workloads, (std::vector<std::string>{"cpu.spin", "test.req"}));
  EXPECT_EQ(named.min_time_s, 0);
  // A sweep of the file's own parameters: one cell per value.
  const RunConfig swept = config_from_request(
      {{"workload_files", p.string()}, {"models", "serial"}, {"params", {{"tasks", "2,3"}}}});
  const auto cells = expand_matrix(swept);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].sweep.at("tasks"), "2");
  EXPECT_EQ(cells[1].sweep.at("tasks"), "3");
  const auto bad = [](const nlohmann::json& req, const std::string& fragment) {
    try {
      config_from_request(req);
      ADD_FAILURE() << req.dump() << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  bad({{"workload_files", 3}}, "--workload-file");
  bad({{"workload_files", nlohmann::json::array()}}, "--workload-file");
  bad({{"workload_files", {1}}}, "--workload-file");
  bad({{"workload_files", ""}}, "--workload-file: empty path");
  bad({{"workload_files",
        write_file("r.json", R"({"name": "test.r", "steps": [{"cpu": 1}]})").string()}},
      "r.json: steps[0].cpu: expected an object");
  bad({{"workload_file", "x"}}, "workload_files");  // the error lists the key
}

}  // namespace
}  // namespace concbench
