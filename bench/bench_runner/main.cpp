// bench_runner: the command line face of the suite. Thin on purpose: parsing and printing here,
// everything measured lives in the harness.
//
// Exit codes:
//   run      0 every cell verified; 1 some cell failed, timed out or errored (the report says
//            which); 2 bad input, with one line on stderr.
//   compare  0 no gating regression (or no gate); 1 --fail-on-regression fired (a regression,
//            a cell newly failing, or a cell of BASE missing from NEW) or --fail-on-broken did
//            (the last two); 2 bad input, including a malformed, truncated or foreign report.
//   verdict  0 the verdict was printed; 2 bad input, including a malformed report.
//   validate 0 every report is well formed, complete and fully verified; 1 well formed but
//            incomplete or with cells that did not verify; 2 malformed.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "concbench/compare.hpp"
#include "concbench/config.hpp"
#include "concbench/foreign_python.hpp"
#include "concbench/machine.hpp"
#include "concbench/model.hpp"
#include "concbench/plugin.hpp"
#include "concbench/process_settings.hpp"
#include "concbench/process_worker.hpp"
#include "concbench/profile.hpp"
#include "concbench/report.hpp"
#include "concbench/runner.hpp"
#include "concbench/trace.hpp"
#include "concbench/verdict.hpp"
#include "concbench/workload.hpp"

namespace {

using namespace concbench;

[[noreturn]] void usage_exit(const std::string& msg) {
  std::cerr << "bench_runner: " << msg << "\n";
  std::exit(2);
}

void print_list() {
  auto print_params = [](const std::vector<ParamSpec>& specs) {
    for (const auto& p : specs) {
      std::cout << "      " << p.name << " = " << p.default_value;
      if (p.kind == ParamSpec::Kind::integer) {
        std::cout << "  [" << p.min << ", " << p.max << "]";
      } else if (p.kind == ParamSpec::Kind::text) {
        std::cout << "  (text)";
      } else {
        std::cout << "  {";
        for (size_t i = 0; i < p.choices.size(); ++i) std::cout << (i ? "|" : "") << p.choices[i];
        std::cout << "}";
      }
      std::cout << "  " << p.help << "\n";
    }
  };
  std::cout << "workloads:\n";
  for (const Workload* w : all_workloads()) {
    std::cout << "  " << w->name();
    if (w->origin() != "builtin") std::cout << " (" << w->origin() << ")";
    std::cout << ": " << w->description() << "\n";
    print_params(w->params());
  }
  std::cout << "models:\n";
  for (const ModelInfo* mi : all_models()) {
    const ModelInfo& m = *mi;
    std::cout << "  " << m.name << ": " << m.description << "\n";
    print_params(m.params);
  }
  std::cout << "suites:";
  for (const auto& s : suite_names()) std::cout << " " << s;
  std::cout << " (default: quick)\n";
}

std::string default_out_path() {
  char stamp[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::error_code ec;
  std::filesystem::create_directories("results", ec);
  return std::string("results/bench-") + stamp + ".json";
}

int run_micro(int argc, char** argv) {
  // Google Benchmark parses its own --benchmark_* flags; we only forward them.
  std::vector<char*> args;
  args.push_back(argv[0]);
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: bench_runner micro [--benchmark_filter=REGEX] [--benchmark_*...]\n"
                   "Runs the Google Benchmark micro-benchmarks under bench/micro; every "
                   "--benchmark_* flag is passed to Google Benchmark.\n";
      return 0;
    }
    args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  // The same fingerprint as a report's context, so a micro-benchmark file under results/ says
  // which machine and which committed tree it came from.
  const nlohmann::json ctx = machine_context();
  for (const char* key : {"git_revision", "cpu_model", "cpus_allowed", "logical_cpus", "kernel",
                          "virtualized", "compiler", "build_type"})
    if (auto it = ctx.find(key); it != ctx.end())
      benchmark::AddCustomContext(std::string("concbench_") + key,
                                  it->is_string() ? it->get<std::string>() : it->dump());
  benchmark::Initialize(&n, args.data());
  if (n > 1) usage_exit(std::string("micro: unknown argument '") + args[1] + "'");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

struct RunFlags {
  std::string suite = "quick", scaling = "strong", checkpoint, gil_policy, switch_interval_us, pin,
              workloads, models, workers, repetitions, min_time, timeout, seed, out, trace,
              trace_cap;
  std::vector<std::string> params, plugins, workload_files, pythons;
  bool overwrite = false, interleave = false, sched_trace = false;
  std::set<std::string> given;  // flags present on the command line, even with an empty value
  bool has(const std::string& flag) const { return given.count(flag) > 0; }
};

// The flags as a request for config_from_request, which the Python module shares: only flags
// present on the command line are passed, so the suite's settings stay where none was given.
RunConfig build_config(const RunFlags& f) {
  nlohmann::json req = nlohmann::json::object();
  const std::pair<const char*, const std::string*> flags[] = {
      {"suite", &f.suite},
      {"workloads", &f.workloads},
      {"models", &f.models},
      {"workers", &f.workers},
      {"repetitions", &f.repetitions},
      {"min_time", &f.min_time},
      {"timeout", &f.timeout},
      {"seed", &f.seed},
      {"scaling", &f.scaling},
      {"checkpoint", &f.checkpoint},
      {"gil_policy", &f.gil_policy},
      {"switch_interval_us", &f.switch_interval_us},
      {"pin", &f.pin},
      {"trace", &f.trace},
      {"trace_cap", &f.trace_cap}};
  for (const auto& [key, value] : flags) {
    std::string name = std::string("--") + key;
    for (char& c : name)
      if (c == '_') c = '-';
    if (f.has(name)) req[key] = *value;
  }
  if (!f.params.empty()) req["params"] = f.params;
  if (!f.plugins.empty()) req["plugins"] = f.plugins;
  if (!f.workload_files.empty()) req["workload_files"] = f.workload_files;
  if (!f.pythons.empty()) req["pythons"] = f.pythons;
  if (f.interleave) req["interleave"] = true;
  if (f.sched_trace) req["sched_trace"] = true;
  return config_from_request(req);
}

int run_suite_cmd(const RunFlags& flags) {
  RunConfig cfg;
  std::string out;
  try {
    cfg = build_config(flags);
    out = flags.has("--out") ? flags.out : default_out_path();
    check_writable(out, flags.overwrite);
    if (!cfg.trace_path.empty()) check_writable(cfg.trace_path, flags.overwrite);
  } catch (const UsageError& e) {
    usage_exit(e.what());
  }

  const nlohmann::json context = machine_context();
  const bool tty = isatty(STDERR_FILENO);
  std::mutex progress_mu;
  std::vector<CellResult> done;  // for the trace file only
  ReportBuilder partial(cfg, context);
  bool abandoned = false;
  auto on_cell = [&](const CellResult& c, size_t, size_t) {
    abandoned = abandoned || c.error.find("abandoned") != std::string::npos;
    partial.add(c);
    partial.write(out, false);
    if (!cfg.trace_path.empty()) {
      done.push_back(c);
      write_trace_atomic(cfg.trace_path, done);
    }
  };
  auto progress = [&](const CellSpec& s, size_t i, size_t n, const std::string& phase) {
    if (!tty) return;
    std::lock_guard lock(progress_mu);
    std::fprintf(stderr, "\r\033[K[%zu/%zu] %s %s workers=%d: %s", i + 1, n, s.workload.c_str(),
                 s.model.c_str(), s.workers, phase.c_str());
    std::fflush(stderr);
  };
  std::vector<CellResult> cells;
  try {
    cells = run_suite(cfg, on_cell, progress);
    partial.write(out, true);  // run_suite passed every cell it returns to on_cell
    if (!cfg.trace_path.empty()) write_trace_atomic(cfg.trace_path, cells);
  } catch (const UsageError& e) {
    usage_exit(e.what());
  } catch (const std::exception& e) {
    std::cerr << "bench_runner: " << e.what() << "\n";
    return 1;
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  const nlohmann::json report = partial.report(true);
  std::cout << format_table(report);
  std::cout << "verdict:\n" << format_verdict(verdict(report), VerdictFormat::text);
  std::cout << "report: " << out << "\n";
  if (!cfg.trace_path.empty())
    std::cout << "trace: " << cfg.trace_path
              << " (open it in ui.perfetto.dev or chrome://tracing)\n";
  int bad = 0;
  for (const auto& c : cells) bad += c.status != "ok";
  if (!context["counters_unavailable"].empty())
    std::cout << "unavailable counters (null in the report): "
              << context["counters_unavailable"].size() << ", see context.counters_unavailable\n";
  if (bad)
    std::cout << bad << " cell(s) did not verify or did not finish; see status in the report\n";
  std::cout.flush();
  // A cell whose workers ignored cancellation still has threads running: leave without
  // destroying what they might touch.
  if (abandoned) _exit(1);
  return bad ? 1 : 0;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct CompareFlags {
  std::vector<std::string> reports;
  bool normalize = false, fail_on_broken = false;
  std::string format = "text", fail_on_regression, alpha, min_effect;
};

double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !(v >= lo && v <= hi))
    usage_exit(flag + ": expected a number in [" + format_number(lo) + ", " + format_number(hi) +
               "], got '" + text + "'");
  return v;
}

int compare_cmd(const CompareFlags& f) {
  if (f.reports.size() < 2) usage_exit("compare: give BASE.json NEW.json [MORE.json ...]");
  CompareOptions opt;
  opt.normalize = f.normalize;
  opt.fail_on_broken = f.fail_on_broken;
  if (!f.fail_on_regression.empty())
    opt.fail_on_regression_pct = parse_number("--fail-on-regression", f.fail_on_regression, 0, 1e6);
  if (!f.alpha.empty()) opt.alpha = parse_number("--alpha", f.alpha, 1e-9, 0.5);
  if (!f.min_effect.empty())
    opt.min_effect_pct = parse_number("--min-effect", f.min_effect, 0, 1000);
  CompareFormat format = CompareFormat::text;
  if (f.format == "md" || f.format == "markdown")
    format = CompareFormat::markdown;
  else if (f.format == "json")
    format = CompareFormat::json;
  else if (f.format != "text")
    usage_exit("--format: expected text, md or json, got '" + f.format + "'");
  std::vector<LoadedReport> reports;
  try {
    for (const std::string& path : f.reports) reports.push_back({path, load_report(path)});
  } catch (const ReportError& e) {
    usage_exit(std::string("compare: ") + e.what());
  }
  const nlohmann::json cmp = compare_reports(reports, opt);
  std::cout << format_comparison(cmp, format);
  std::cout.flush();
  return comparison_exit_code(cmp);
}

struct VerdictFlags {
  std::string report, format = "text", alpha, min_effect;
};

int verdict_cmd(const VerdictFlags& f) {
  if (f.report.empty()) usage_exit("verdict: give a report file");
  VerdictOptions opt;
  if (!f.alpha.empty()) opt.alpha = parse_number("--alpha", f.alpha, 1e-9, 0.5);
  if (!f.min_effect.empty())
    opt.min_effect_pct = parse_number("--min-effect", f.min_effect, 0, 1000);
  VerdictFormat format = VerdictFormat::text;
  if (f.format == "md" || f.format == "markdown")
    format = VerdictFormat::markdown;
  else if (f.format == "json")
    format = VerdictFormat::json;
  else if (f.format != "text")
    usage_exit("--format: expected text, md or json, got '" + f.format + "'");
  nlohmann::json report;
  try {
    report = load_report(f.report);
  } catch (const ReportError& e) {
    usage_exit(std::string("verdict: ") + e.what());
  }
  std::cout << format_verdict(verdict(report, opt), format);
  std::cout.flush();
  return 0;
}

int validate_cmd(const std::vector<std::string>& paths) {
  if (paths.empty()) usage_exit("validate: give one or more report files");
  int rc = 0;
  for (const std::string& path : paths) {
    nlohmann::json r;
    try {
      r = load_report(path);
    } catch (const ReportError& e) {
      usage_exit(std::string("validate: ") + e.what());
    }
    size_t bad = 0;
    for (const auto& c : r["results"]) bad += c["status"] != "ok";
    const bool complete = r["complete"].get<bool>();
    std::cout << path << ": schema " << r["schema_version"] << ", " << r["results"].size()
              << " cells, " << (complete ? "complete" : "INCOMPLETE (the run was interrupted)");
    if (bad) std::cout << ", " << bad << " cell(s) not ok:";
    for (const auto& c : r["results"])
      if (c["status"] != "ok")
        std::cout << " " << c["workload"].get<std::string>() << "/" << c["model"].get<std::string>()
                  << "/workers:" << c["workers"] << "=" << c["status"].get<std::string>();
    std::cout << "\n";
    if (bad || !complete) rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything allocates, and in every mode (a spawned worker included): the same allocator
  // policy and descriptor limit as the Python module's, from the one definition.
  apply_process_settings();
  // process_pool's spawn start method execs us as a worker; no user types this. The worker loads
  // the parent's plugins (kPluginsEnv) itself.
  if (argc > 1 && std::string(argv[1]) == "__worker") return process_worker_main(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "micro") return run_micro(argc, argv);

  CLI::App app{"concbench: which concurrency model wins, by how much, and why"};
  app.require_subcommand(1);
  auto* list = app.add_subcommand("list", "list workloads, models, parameters and suites");
  auto* run = app.add_subcommand("run", "run the matrix and write a JSON report");
  app.add_subcommand("micro", "run the Google Benchmark micro-benchmarks (--benchmark_* flags)");
  auto* compare =
      app.add_subcommand("compare", "compare reports cell by cell: NEW (and MORE) against BASE");
  CompareFlags cf;
  compare->add_option("reports", cf.reports, "BASE.json NEW.json [MORE.json ...]");
  compare->add_flag("--normalize", cf.normalize,
                    "divide each report by its own serial baseline per workload (compare "
                    "model-versus-model conclusions across machines of different speeds)");
  compare->add_option("--fail-on-regression", cf.fail_on_regression,
                      "PCT: exit 1 when a cell's time per task rose by more than PCT percent "
                      "(significant by Mann-Whitney U), a cell that verified now fails, or a "
                      "cell of BASE is missing from NEW");
  compare->add_flag("--fail-on-broken", cf.fail_on_broken,
                    "exit 1 when a cell that verified in BASE fails now or is missing from NEW, "
                    "timings not gated (BASE from another machine)");
  compare->add_option("--format", cf.format, "text (default) | md | json");
  compare->add_option("--alpha", cf.alpha,
                      "significance level of the U test, and 1 - the level of the conclusions' "
                      "intervals (default 0.05)");
  compare->add_option(
      "--min-effect", cf.min_effect,
      "PCT: a conclusion's interval must lie beyond 1 + PCT/100 to count as an ordering "
      "(default 10)");
  auto* verdict_sub = app.add_subcommand(
      "verdict", "which model wins each workload of a report, by how much, and why");
  VerdictFlags vf;
  verdict_sub->add_option("report", vf.report, "REPORT.json");
  verdict_sub->add_option("--format", vf.format, "text (default) | md | json");
  verdict_sub->add_option("--alpha", vf.alpha,
                          "1 - the level of the margins' bootstrap intervals (default 0.05)");
  verdict_sub->add_option("--min-effect", vf.min_effect,
                          "PCT: a margin within PCT/2 percent of 1 is a tie (default 10)");
  auto* validate = app.add_subcommand(
      "validate", "check reports against the schema; exit 1 if incomplete or not all verified");
  std::vector<std::string> validate_paths;
  validate->add_option("reports", validate_paths, "report files");
  // --plugin goes before the subcommand or after it: global ones load first.
  std::vector<std::string> global_plugins, list_plugins;
  const char* plugin_help = "a shared library of kernels and workloads (user.hpp); repeatable";
  app.add_option("--plugin", global_plugins, plugin_help)->allow_extra_args(false);
  list->add_option("--plugin", list_plugins, plugin_help)->allow_extra_args(false);
  RunFlags f;
  run->add_option("--plugin", f.plugins, plugin_help)->allow_extra_args(false);
  run->add_option("--suite", f.suite, "smoke | quick | full (default quick)");
  run->add_option("--workloads", f.workloads, "comma-separated workload names");
  run->add_option("--models", f.models, "comma-separated model names");
  run->add_option("--workers", f.workers, "comma-separated worker counts, e.g. 1,2,4");
  run->add_option("--repetitions", f.repetitions, "measured repetitions per cell");
  run->add_option("--min-time", f.min_time,
                  "seconds each repetition lasts at least (calibration; default: the suite's, "
                  "0 with --workloads)");
  run->add_option("--timeout", f.timeout, "seconds per cell before it is cancelled and recorded");
  run->add_option("--workload-file", f.workload_files,
                  "a profile (examples/profiles/*.json): its workload joins the registry and, "
                  "without --workloads, is what runs (repeatable)")
      ->allow_extra_args(false);
  std::vector<std::string> list_files;
  list->add_option("--workload-file", list_files, "list this profile's workload too (repeatable)")
      ->allow_extra_args(false);
  const char* python_help =
      "another Python interpreter (jython, pypy3, a CPython): its py:<label>.threading and "
      "py:<label>.serial models join the registry (repeatable)";
  run->add_option("--python", f.pythons, python_help)->allow_extra_args(false);
  std::vector<std::string> list_pythons;
  list->add_option("--python", list_pythons, python_help)->allow_extra_args(false);
  run->add_option("--param", f.params, "key=value for workloads and models (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--scaling", f.scaling,
                  "strong (default: same tasks split across workers) or weak (tasks x workers)");
  run->add_option("--gil-policy", f.gil_policy,
                  "gil_threads: the CPython versions whose GIL to emulate: 3.1 | 3.2-3.9 | 3.10 | "
                  "3.11-3.12 (default) | 3.13+");
  run->add_option("--checkpoint", f.checkpoint,
                  "gil_threads: where the eval breaker is checked, overriding the policy: "
                  "backedge (CPython 3.10+) or per_instruction (3.9 and earlier)");
  run->add_option("--switch-interval-us", f.switch_interval_us,
                  "gil_threads: the GIL switch interval in microseconds (default 5000)");
  run->add_option("--pin", f.pin, "pinned_pool: compact | scatter | list:0,2,4 (OS PU indexes)");
  run->add_option("--seed", f.seed, "seed of the task generator");
  run->add_option("--out", f.out, "report path (default results/bench-<time>.json)");
  run->add_flag("--overwrite", f.overwrite, "replace the --out (and --trace) file if it exists");
  run->add_option("--trace", f.trace,
                  "write the first measured repetition of each cell as a Chrome trace "
                  "(Perfetto, chrome://tracing) to this file");
  run->add_option("--trace-cap", f.trace_cap, "events per cell kept in the trace (default 200000)");
  run->add_flag("--sched-trace", f.sched_trace,
                "record the scheduler's switches and wake-ups in the first measured repetition "
                "(needs root or CAP_PERFMON and tracefs mounted; the report says why not)");
  run->add_flag("--interleave", f.interleave,
                "run repetition r of every cell before repetition r+1 of any (a drift of the "
                "machine then spreads over all cells instead of looking like one cell's effect)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string msg = e.what();
    for (char& ch : msg)
      if (ch == '\n') ch = ' ';
    usage_exit(msg);
  }
  if (list->parsed()) {
    try {
      for (const auto& p : global_plugins) load_plugin(p);
      for (const auto& p : list_plugins) load_plugin(p);
      for (const std::string& path : list_files) load_profile_file(path);
      for (const std::string& path : list_pythons) register_foreign_python(path);
    } catch (const UsageError& e) {
      usage_exit(e.what());
    }
    print_list();
    return 0;
  }
  if (compare->parsed()) return compare_cmd(cf);
  if (validate->parsed()) return validate_cmd(validate_paths);
  if (verdict_sub->parsed()) return verdict_cmd(vf);
  if (run->parsed()) {
    f.plugins.insert(f.plugins.begin(), global_plugins.begin(), global_plugins.end());
    for (const CLI::Option* o : run->get_options())
      if (o->count() > 0) f.given.insert(o->get_name());
    return run_suite_cmd(f);
  }
  return 0;
}
