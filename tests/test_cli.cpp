// bench_runner as a user meets it: bad input gets one line and exit 2; a smoke run writes a
// report that parses and holds what the schema promises.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "concbench/counters.hpp"
#include "concbench/report.hpp"
#include "concbench/runner.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path scratch_dir() {
  static const fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("concbench-cli-" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

Result run(const std::string& args) {
  const fs::path out = scratch_dir() / "stdout", err = scratch_dir() / "stderr";
  const std::string cmd = std::string(BENCH_RUNNER) + " " + args + " >" + out.string() + " 2>" +
                          err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

class BadInput : public ::testing::TestWithParam<const char*> {};

TEST_P(BadInput, ExitsTwoWithOneLine) {
  const Result r = run(GetParam());
  EXPECT_EQ(r.code, 2) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_EQ(r.err.rfind("bench_runner: ", 0), 0u) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Cli, BadInput,
    ::testing::Values(
        "", "frobnicate", "run --checkpoint sometimes", "run --gil-policy 2.7",
        "run --switch-interval-us 0", "run --models free_threads --switch-interval-us 100",
        "run --frobnicate", "run --workers 0", "run --workers -1", "run --workers abc",
        "run --workers 1,,2", "run --workers 99999", "run --workers ''", "run --repetitions 0",
        "run --repetitions -3", "run --repetitions x", "run --repetitions 1e3",
        "run --param tasks=0", "run --param tasks=-5", "run --param units=1.5",
        "run --param nokey=1", "run --param novalue", "run --param =3", "run --workloads nope",
        "run --workloads cpu.spin,", "run --models nope", "run --suite nope",
        "run --out /nonexistent-dir/x.json", "run --out /tmp", "run --timeout 0",
        "run --timeout -4", "run --min-time -1", "run --min-time nan", "run --seed -1",
        "run --seed 12abc", "micro --bogus", "run --workloads cpu.spin --param sleep_us=5",
        "run --scaling sideways", "compare", "compare only-one.json",
        "compare --format xml a.json b.json", "compare --fail-on-regression -1 a.json b.json",
        "compare --fail-on-regression 10% a.json b.json", "compare --alpha 0 a.json b.json",
        "compare /nonexistent/a.json /nonexistent/b.json", "compare --bogus a.json b.json",
        "validate", "validate /nonexistent.json", "verdict", "verdict /nonexistent.json",
        "verdict --format xml a.json", "verdict --alpha 0 a.json", "verdict --bogus a.json",
        "run --plugin /nonexistent.so", "list --plugin /nonexistent.so",
        "--plugin /nonexistent.so run", "run --plugin ''", "run --plugin /etc/hostname",
        "run --plugin", "run --python /nonexistent", "list --python /nonexistent",
        "run --python /bin/false", "run --python ''", "run --python",
        "run --models py:cpython-3.11.threading",
        // Every flag: empty, negative, zero, huge, non-numeric and unknown values.
        "run --workers ''", "run --workers 1e9", "run --workers 18446744073709551616",
        "run --repetitions 100000000", "run --repetitions 99999999999999999999",
        "run --repetitions ''", "run --min-time 1e99", "run --min-time inf", "run --min-time ''",
        "run --timeout 1e99", "run --timeout inf", "run --timeout abc", "run --timeout ''",
        "run --models gil_threads --switch-interval-us ''",
        "run --models gil_threads --switch-interval-us -1",
        "run --models gil_threads --switch-interval-us 1e99",
        "run --models gil_threads --switch-interval-us 99999999999999999999",
        "run --models gil_threads --checkpoint ''", "run --seed ''",
        // The interpreter to calibrate from: not a file, relative, quoted, another policy's.
        "run --models gil_threads --param interpreter=/nonexistent",
        "run --models gil_threads --param interpreter=python3",
        "run --models gil_threads --param \"interpreter=/tmp/it's\"",
        "run --models gil_threads --param interpreter=/etc/hostname",
        "run --models gil_threads --param interpreter=/bin/false",
        "run --models gil_threads --param interpreter_cost=default --param "
        "interpreter=/usr/bin/python3",
        "run --seed 18446744073709551616", "run --seed 1.5", "run --param ''",
        "run --param units=", "run --param units=abc", "run --param units=99999999999999999999",
        "run --param =", "run --param tasks=99999999999", "run --param payload_bytes=1073741825",
        "run --models pinned_pool --pin ''",
        "run --models pinned_pool --pin list:", "run --models pinned_pool --pin list:-1",
        "run --models pinned_pool --pin list:abc", "run --models pinned_pool --pin list:99999",
        "run --models pinned_pool --pin sideways", "run --suite ''", "run --scaling ''",
        "run --models ''", "run --models serial,,", "run --workloads ' '", "run --out ''",
        "run --out /proc/concbench.json", "run --out " BENCH_RUNNER,
        "compare --format '' a.json b.json", "compare --fail-on-regression '' a.json b.json",
        "compare --fail-on-regression abc a.json b.json",
        "compare --fail-on-regression 1e99 a.json b.json", "compare --alpha '' a.json b.json",
        "compare --alpha 1 a.json b.json", "compare --alpha abc a.json b.json",
        "compare --min-effect -1 a.json b.json", "compare --min-effect '' a.json b.json",
        "compare --min-effect abc a.json b.json", "compare --min-effect 1e9 a.json b.json"));

// Report files from elsewhere, as compare and validate meet them: each is refused with exit 2 and
// one line that names the file and the problem.
TEST(Cli, ForeignAndBrokenReportsAreOneLineErrors) {
  const fs::path good = scratch_dir() / "good.json";
  ASSERT_EQ(run("run --workloads cpu.spin --models serial --repetitions 2 --param tasks=2 "
                "--param units=5 --out " +
                good.string())
                .code,
            0);
  const std::string text = slurp(good);
  json future = json::parse(text);
  future["schema_version"] = 2;
  json no_results = json::parse(text);
  no_results.erase("results");
  json wrong_type = json::parse(text);
  wrong_type["results"][0]["repetitions"][0]["wall_ns"] = "fast";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {text.substr(0, text.size() / 3), "truncated"},
      {std::string("\x7f\x45\x4c\x46\x02\x01\x01\x00garbage", 15), "not valid JSON"},
      {"", "empty file"},
      {R"({"schema_version": 1e999})", "not valid JSON"},  // found by fuzz_report
      {R"({"context": {}, "benchmarks": []})", "a Google Benchmark report"},
      {R"({"results": []})", "not a concbench report"},
      {"[1, 2, 3]", "not a concbench report"},
      {future.dump(), "schema version 2"},
      {no_results.dump(), "missing field 'results'"},
      {wrong_type.dump(), "results[0].repetitions[0].wall_ns: expected a number"},
  };
  int i = 0;
  for (const auto& [content, message] : cases) {
    const fs::path bad = scratch_dir() / ("bad" + std::to_string(i++) + ".json");
    std::ofstream(bad, std::ios::binary) << content;
    for (const std::string cmd :
         {"compare " + good.string() + " " + bad.string(), "validate " + bad.string()}) {
      const Result r = run(cmd);
      EXPECT_EQ(r.code, 2) << cmd;
      EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(message), std::string::npos) << message << " in " << r.err;
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    }
  }
}

TEST(Cli, ListNamesEveryWorkloadAndModel) {
  const Result r = run("list");
  EXPECT_EQ(r.code, 0);
  for (const char* name : {"cpu.spin", "cpu.pidigits", "io.sleep", "io.pipe_echo", "overhead.noop",
                           "serial", "free_threads", "payload_bytes", "smoke"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
}

// --python: the interpreter's py:<label>.* models are listed and run, and their cells verify.
TEST(Cli, AnotherInterpreterIsListedAndRun) {
  const Result l = run("list --python /usr/bin/python3");
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_NE(l.out.find("py:cpython-3."), std::string::npos) << l.out;
  const fs::path out = scratch_dir() / "py.json";
  const Result r =
      run("run --python /usr/bin/python3 --workloads cpu.spin,overhead.noop "
          "--models py:cpython-3.11.threading,py:cpython-3.11.serial --workers 1,2 "
          "--repetitions 1 --param tasks=8 --param units=5 --overwrite --out " +
          out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const json rep = json::parse(slurp(out));
  ASSERT_EQ(rep.at("results").size(), 6u);
  for (const json& c : rep.at("results")) EXPECT_EQ(c.at("status"), "ok") << c.dump();
}

// A profile (--workload-file): a bad one is one line naming the file and the key, exit 2; a good
// one is listed, and run alone when --workloads is not given.
TEST(Cli, WorkloadFilesAreCheckedListedAndRun) {
  const auto write = [](const char* name, const std::string& text) {
    const fs::path p = scratch_dir() / name;
    std::ofstream(p) << text;
    return p.string();
  };
  const std::string bad = write("bad-profile.json", R"({"name": "cli.bad",
      "steps": [{"cpu": {"us": 1}}, {"sleep": {"us": 70000000}}]})");
  for (const std::string& args : {"run --workload-file " + bad, "list --workload-file " + bad}) {
    SCOPED_TRACE(args);
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("bench_runner: " + bad + ": steps[1].sleep.us: must be at most", 0), 0u)
        << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  const Result missing = run("run --workload-file " + (scratch_dir() / "nope.json").string());
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("nope.json: cannot read"), std::string::npos) << missing.err;

  const std::string good = write("good-profile.json", R"({"name": "cli.good", "tasks": 4,
      "steps": [{"cpu": {"us": 200}}, {"sleep": {"us": 200}}]})");
  const Result listed = run("list --workload-file " + good);
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_NE(listed.out.find("cli.good"), std::string::npos) << listed.out;
  const fs::path report_path = scratch_dir() / "profile.json";
  const Result r = run("run --workload-file " + good + " --workload-file " + good +
                       " --models serial,thread_pool --workers 2 --repetitions 1 --min-time 0 "
                       "--param tasks=3 --overwrite --out " +
                       report_path.string());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json report = json::parse(slurp(report_path));
  ASSERT_EQ(report["results"].size(), 2u);  // only the profile: no suite workloads
  for (const json& cell : report["results"]) {
    EXPECT_EQ(cell["workload"], "cli.good");
    EXPECT_EQ(cell["workload_origin"], "profile");
    EXPECT_EQ(cell["status"], "ok");
  }
}

TEST(Cli, HelpExitsZero) {
  EXPECT_EQ(run("--help").code, 0);
  EXPECT_EQ(run("run --help").code, 0);
  EXPECT_EQ(run("micro --help").code, 0);
}

TEST(Cli, MicroRunsGoogleBenchmark) {
  const Result r = run("micro --benchmark_filter=BM_TimerNow --benchmark_min_time=0.01");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("BM_TimerNow"), std::string::npos) << r.out;
}

// `bench_runner verdict` on a smoke report: one line per workload (the smoke suite sweeps
// nothing and runs each workload with one parameter set), exit 0; `run` prints the same verdict
// between its table and the report path. A file that is not a report: one line, exit 2.
TEST(Cli, VerdictPrintsOneLinePerWorkload) {
  const fs::path report_path = scratch_dir() / "verdict-smoke.json";
  const Result ran = run("run --suite smoke --out " + report_path.string());
  ASSERT_EQ(ran.code, 0) << ran.out << ran.err;
  const size_t verdict_at = ran.out.find("\nverdict:\n"), report_at = ran.out.find("report: ");
  ASSERT_NE(verdict_at, std::string::npos) << ran.out;
  EXPECT_LT(verdict_at, report_at) << ran.out;

  const Result r = run("verdict " + report_path.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const json report = json::parse(slurp(report_path));
  std::set<std::string> workloads;
  for (const json& c : report["results"]) workloads.insert(c["workload"].get<std::string>());
  std::istringstream lines(r.out);
  std::string line;
  std::set<std::string> seen;
  size_t n = 0;
  while (std::getline(lines, line)) {
    ++n;
    const std::string name = line.substr(0, line.find(':'));
    EXPECT_TRUE(workloads.count(name)) << line;
    seen.insert(name);
  }
  EXPECT_EQ(n, workloads.size()) << r.out;
  EXPECT_EQ(seen, workloads) << r.out;
  // The text printed by run is the same verdict.
  EXPECT_NE(ran.out.find(r.out), std::string::npos) << ran.out << "\n---\n" << r.out;

  const Result j = run("verdict --format json " + report_path.string());
  ASSERT_EQ(j.code, 0) << j.err;
  const json v = json::parse(j.out);
  EXPECT_EQ(v["verdict_version"], 1);
  EXPECT_EQ(v["workloads"].size(), workloads.size());
  const Result md = run("verdict --format md " + report_path.string());
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_EQ(md.out.rfind("| workload", 0), 0u) << md.out;

  const fs::path bad = scratch_dir() / "not-a-report.json";
  std::ofstream(bad) << "{\"results\": [";
  const Result b = run("verdict " + bad.string());
  EXPECT_EQ(b.code, 2);
  EXPECT_TRUE(b.out.empty()) << b.out;
  EXPECT_EQ(b.err.find('\n'), b.err.size() - 1) << b.err;
  EXPECT_NE(b.err.find(bad.string()), std::string::npos) << b.err;
}

// A plugin's workload runs under every model, each verifying, and the report says what ran.
TEST(Cli, APluginWorkloadVerifiesUnderEveryModel) {
#ifndef EXAMPLE_PLUGIN
  GTEST_SKIP() << "built without CONCBENCH_BUILD_EXAMPLES";
#else
  const fs::path report_path = scratch_dir() / "plugin.json";
  const Result r = run(std::string("run --plugin ") + EXAMPLE_PLUGIN +
                       " --workloads example.collatz --models serial,free_threads,gil_threads,"
                       "thread_pool,pinned_pool,process_pool,async,async_mt --workers 1,2 "
                       "--repetitions 1 --param units=50 --overwrite --out " +
                       report_path.string());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json report = json::parse(slurp(report_path));
  ASSERT_EQ(report["context"]["plugins"].size(), 1u);
  EXPECT_EQ(report["context"]["plugins"][0], fs::canonical(EXAMPLE_PLUGIN).string());
  EXPECT_EQ(report["results"].size(), 14u);  // serial and async: one cell; the others: two
  for (const json& cell : report["results"]) {
    EXPECT_EQ(cell["status"], "ok") << cell.dump();
    EXPECT_EQ(cell["workload_origin"], "plugin") << cell.dump();
  }
#endif
}

TEST(Cli, SmokeRunWritesAVerifiedReport) {
  const fs::path report_path = scratch_dir() / "smoke.json";
  const Result r = run("run --suite smoke --out " + report_path.string());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("throughput/s"), std::string::npos);
  EXPECT_NE(r.out.find("report: "), std::string::npos);
  const json report = json::parse(slurp(report_path));
  EXPECT_EQ(report["schema_version"], 1);
  EXPECT_TRUE(report["complete"]);
  const json& ctx = report["context"];
  for (const char* k : {"date", "hostname", "cpu_model", "logical_cpus", "physical_cores",
                        "topology", "kernel", "compiler", "build_type", "cpu_governor",
                        "virtualized", "load_average", "git_revision", "counters_unavailable"})
    EXPECT_TRUE(ctx.contains(k)) << k;
  const auto& probe = concbench::counter_probe();
  ASSERT_EQ(report["results"].size(),
            concbench::expand_matrix(concbench::suite_config("smoke")).size());
  auto has_one_worker_cell = [&](const json& cell) {
    for (const json& other : report["results"])
      if (other["workload"] == cell["workload"] && other["model"] == cell["model"] &&
          other["workers"] == 1)
        return true;
    return false;
  };
  for (const json& cell : report["results"]) {
    SCOPED_TRACE(cell["workload"].get<std::string>() + "/" + cell["model"].get<std::string>());
    EXPECT_EQ(cell["status"], "ok") << cell["error"];
    ASSERT_EQ(cell["repetitions"].size(), 2u);
    for (const json& rep : cell["repetitions"]) {
      EXPECT_TRUE(rep["verified"]);
      for (int c = 0; c < concbench::kCounterCount; ++c) {
        const auto k = static_cast<concbench::Counter>(c);
        const std::string name(concbench::counter_name(k));
        if (probe.available(k)) {
          EXPECT_TRUE(rep["counters"][name].is_number()) << name;
        } else {
          EXPECT_TRUE(rep["counters"][name].is_null()) << name;
          EXPECT_TRUE(ctx["counters_unavailable"][name].is_string()) << name;
        }
      }
    }
    if (cell["workload"] == "io.sleep" && probe.available(concbench::Counter::context_switches))
      EXPECT_GT(cell["repetitions"][0]["counters"]["context_switches"].get<int64_t>(), 0);
    EXPECT_EQ(cell["summary"]["speedup"].is_number(), has_one_worker_cell(cell));
    EXPECT_TRUE(cell["summary"]["speedup_vs_serial"].is_number());
  }
  EXPECT_FALSE(report["benchmarks"].empty());
  EXPECT_NO_THROW(concbench::validate_report(report));

  // The report read back: validate, compare with itself, with a truncated copy, with a copy in
  // which one cell failed, and through Google Benchmark's own compare.py.
  const Result v = run("validate " + report_path.string());
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("complete"), std::string::npos) << v.out;
  const Result self =
      run("compare --fail-on-regression 10 " + report_path.string() + " " + report_path.string());
  EXPECT_EQ(self.code, 0) << self.out << self.err;
  EXPECT_NE(self.out.find("geometric mean over " + std::to_string(report["results"].size())),
            std::string::npos)
      << self.out;

  const std::string text = slurp(report_path);
  const fs::path truncated = scratch_dir() / "truncated.json";
  std::ofstream(truncated) << text.substr(0, text.size() * 2 / 3);
  const Result t = run("compare " + report_path.string() + " " + truncated.string());
  EXPECT_EQ(t.code, 2);
  EXPECT_NE(t.err.find("truncated"), std::string::npos) << t.err;
  EXPECT_EQ(t.err.find('\n'), t.err.size() - 1) << t.err;
  EXPECT_EQ(run("validate " + truncated.string()).code, 2);

  json broken = report;
  broken["results"][0]["status"] = "wrong_result";
  const fs::path broken_path = scratch_dir() / "broken.json";
  std::ofstream(broken_path) << broken.dump();
  const Result b =
      run("compare --fail-on-regression 1000 " + report_path.string() + " " + broken_path.string());
  EXPECT_EQ(b.code, 1) << b.out << b.err;
  EXPECT_NE(b.out.find("FAILED: wrong_result"), std::string::npos) << b.out;
  EXPECT_EQ(run("validate " + broken_path.string()).code, 1);

  // A cell that vanished from NEW gates, and the line names it.
  json vanished = report;
  const json gone = vanished["results"].back();
  vanished["results"].erase(vanished["results"].size() - 1);
  const fs::path vanished_path = scratch_dir() / "vanished.json";
  std::ofstream(vanished_path) << vanished.dump();
  const Result m = run("compare --fail-on-regression 1000 " + report_path.string() + " " +
                       vanished_path.string());
  EXPECT_EQ(m.code, 1) << m.out << m.err;
  EXPECT_NE(m.out.find("gate: MISSING " + gone["workload"].get<std::string>() + "/" +
                       gone["model"].get<std::string>() + "/workers:" + gone["workers"].dump()),
            std::string::npos)
      << m.out;
  EXPECT_EQ(run("compare --fail-on-regression 1000 " + vanished_path.string() + " " +
                report_path.string())
                .code,
            0);  // a cell only in NEW does not gate
  EXPECT_EQ(
      run("compare --fail-on-broken " + report_path.string() + " " + vanished_path.string()).code,
      1);
  EXPECT_EQ(
      run("compare --fail-on-broken " + report_path.string() + " " + broken_path.string()).code, 1);

  // Run as the user would: by its path, so its shebang picks the interpreter (the checkout's
  // .python-version points pyenv at Debian's python3, which has scipy).
  const std::string gbench = "/usr/share/benchmark/compare.py";
  ASSERT_TRUE(fs::exists(gbench)) << "libbenchmark-tools is missing: run scripts/setup.sh";
  const fs::path gout = scratch_dir() / "gbench.out";
  const int status = std::system((gbench + " benchmarks " + report_path.string() + " " +
                                  broken_path.string() + " >" + gout.string() + " 2>&1")
                                     .c_str());
  const std::string got = slurp(gout);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << got;
  EXPECT_NE(got.find("cpu.spin/serial/workers:1"), std::string::npos) << got;
  EXPECT_NE(got.find("U Test"), std::string::npos) << got;
}

// SIGKILL while the report is being rewritten leaves the previous report or none, never half of
// one: the report goes to a temporary file that is renamed over it. The kill is aimed at the
// moment a temporary file exists, i.e. in the middle of a write, at a different write each time.
TEST(Cli, SigkillWhileWritingLeavesTheOldReportOrNone) {
  const fs::path dir = scratch_dir() / "sigkill";
  int killed_mid_write = 0;
  for (int round = 0; round < 12; ++round) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path out = dir / "report.json";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      freopen("/dev/null", "w", stdout);
      execl(BENCH_RUNNER, BENCH_RUNNER, "run", "--suite", "smoke", "--repetitions", "6", "--out",
            out.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for the (round % 6 + 1)-th temporary file, then kill at once.
    int seen = 0;
    bool in_tmp = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      bool tmp_now = false;
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp.") != std::string::npos) tmp_now = true;
      if (tmp_now && !in_tmp && ++seen == round % 6 + 1) break;
      in_tmp = tmp_now;
    }
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) ++killed_mid_write;
    if (!fs::exists(out)) continue;  // killed before the first rename: no report, not half of one
    const std::string text = slurp(out);
    json report;
    ASSERT_NO_THROW(report = json::parse(text)) << "round " << round << ": " << text.size();
    EXPECT_NO_THROW(concbench::validate_report(report)) << "round " << round;
  }
  EXPECT_GT(killed_mid_write, 0);  // the runs were killed, not finished first
}

TEST(Cli, ATimedOutCellIsRecordedAndTheRunExitsOne) {
  const fs::path report_path = scratch_dir() / "timeout.json";
  const Result r =
      run("run --workloads io.sleep --models free_threads --workers 1 --repetitions 1 "
          "--param sleep_us=600000000 --param tasks=2 --timeout 0.3 --out " +
          report_path.string());
  EXPECT_EQ(r.code, 1) << r.err;
  const json report = json::parse(slurp(report_path));
  EXPECT_TRUE(report["complete"]);
  EXPECT_EQ(report["results"][0]["status"], "timed_out");
}

}  // namespace
