#include "concbench/report.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "concbench/attribution.hpp"
#include "concbench/model.hpp"
#include "concbench/params.hpp"
#include "table.hpp"

namespace concbench {
namespace {

using nlohmann::json;

// The counters every repetition reports, in the schema's order; null when unavailable.
constexpr Counter kReportCounters[] = {Counter::context_switches,
                                       Counter::voluntary_context_switches,
                                       Counter::involuntary_context_switches,
                                       Counter::cpu_migrations,
                                       Counter::page_faults,
                                       Counter::task_clock_ns,
                                       Counter::cycles,
                                       Counter::instructions,
                                       Counter::cache_references,
                                       Counter::cache_misses,
                                       Counter::l1d_load_misses,
                                       Counter::llc_load_misses};

json counters_to_json(const CounterValues& c) {
  json j = json::object();
  for (Counter k : kReportCounters) {
    auto v = c.get(k);
    j[std::string(counter_name(k))] = v ? json(*v) : json(nullptr);
  }
  j["multiplexed"] = c.multiplexed;
  return j;
}

json repetition_to_json(const RepetitionResult& r) {
  return {{"wall_ns", r.wall_ns},
          {"outer_wall_ns", r.outer_wall_ns},
          {"cpu_user_ns", r.cpu_user_ns},
          {"cpu_sys_ns", r.cpu_sys_ns},
          {"cpu_covers_children", r.cpu_covers_children},
          {"rounds", r.rounds},
          {"short_of_min_time", r.short_of_min_time},
          {"latency_sampling",
           {{"one_in", r.latency_stride},
            {"instrumentation_ns_per_item", r.instrumentation_ns_per_item}}},
          {"tasks", r.tasks},
          {"throughput_per_s", r.throughput_per_s},
          {"task_latency_ns", r.latency},
          {"counters", counters_to_json(r.counters)},
          {"metrics", r.metrics},
          {"model_metrics", r.model_metrics},
          {"memory", r.memory},
          {"attribution", r.attribution},
          {"verified", r.verified},
          {"failed_tasks", r.failed_tasks},
          {"wrong_checksums", r.wrong_checksums},
          {"not_run", r.not_run},
          {"failures", r.failure_samples}};
}

// Verified repetitions only: a repetition that did not verify measured something else.
std::vector<const RepetitionResult*> good_reps(const CellResult& c) {
  std::vector<const RepetitionResult*> out;
  for (const auto& r : c.repetitions)
    if (r.verified) out.push_back(&r);
  return out;
}

json summary_json(const CellResult& c) {
  std::vector<double> wall, per_task, thr;
  for (const RepetitionResult* r : good_reps(c)) {
    wall.push_back(static_cast<double>(r->wall_ns));
    per_task.push_back(r->tasks ? static_cast<double>(r->wall_ns) / static_cast<double>(r->tasks)
                                : 0.0);
    thr.push_back(r->throughput_per_s);
  }
  if (wall.empty())
    return {{"wall_ns", nullptr},
            {"wall_ns_per_task", nullptr},
            {"throughput_per_s", nullptr},
            {"speedup", nullptr},
            {"speedup_vs_serial", nullptr}};
  return {{"wall_ns", summarize(wall)},
          {"wall_ns_per_task", summarize(per_task)},
          {"throughput_per_s", summarize(thr)},
          {"speedup", nullptr},
          {"speedup_vs_serial", nullptr}};
}

// The convoy effect, flagged: an IO worker's round trip (the workload's rtt_p50_ns and
// rtt_p99_ns, medians over the verified repetitions) at half the switch interval or more means it
// waited for a CPU-bound thread to give up the lock. The interval is the cell's own
// (switch_interval_us) or CPython's default, 5 ms, for a model that has none. A model that
// shares only the CPUs (ModelInfo::shares_only_cpus) has no lock to wait behind: a tail that long
// there is a thread waiting for a CPU (three threads on two CPUs give 3.6 ms p99s here now and
// then), so it is reported as `slow_tail` and not flagged. Null for a workload without round
// trips.
json convoy_json(const json& cell, const ModelInfo* info) {
  std::vector<double> p50, p99;
  for (const json& r : cell["repetitions"]) {
    if (!r["verified"].get<bool>()) continue;
    const json& m = r["metrics"];
    if (m.contains("rtt_p50_ns") && m["rtt_p50_ns"].is_number())
      p50.push_back(m["rtt_p50_ns"].get<double>());
    if (m.contains("rtt_p99_ns") && m["rtt_p99_ns"].is_number())
      p99.push_back(m["rtt_p99_ns"].get<double>());
  }
  if (p50.empty()) return nullptr;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double interval_ns = 5e6;
  std::string source = "CPython's default (the model has no switch interval)";
  const json& params = cell["params"];
  if (params.contains("switch_interval_us")) {
    interval_ns = std::stod(params["switch_interval_us"].get<std::string>()) * 1e3;
    source = "the cell's switch_interval_us";
  }
  constexpr double kShare = 0.5;
  const double a = median(p50), b = p99.empty() ? a : median(p99);
  const bool slow = std::max(a, b) >= kShare * interval_ns;
  const bool only_cpus = info && info->shares_only_cpus;
  return {{"flag", slow && !only_cpus},
          {"slow_tail", slow},
          {"shares_only_cpus", only_cpus},
          {"rtt_p50_ns", a},
          {"rtt_p99_ns", p99.empty() ? json(nullptr) : json(b)},
          {"switch_interval_ns", interval_ns},
          {"switch_interval_from", source},
          {"threshold_share", kShare}};
}

json attribution_json(const CellResult& c) {
  std::vector<const json*> reps;
  for (const RepetitionResult* r : good_reps(c)) reps.push_back(&r->attribution);
  return summarize_attribution(reps);
}

// Whether two cells of one workload ran the same tasks: equal workload parameters, `tasks` aside
// under weak scaling (it grows with the workers there by design).
bool same_tasks(const RunConfig& cfg, const json& a, const json& b) {
  if (!a.contains("workload_params") || !b.contains("workload_params")) return true;
  json pa = a["workload_params"], pb = b["workload_params"];
  if (cfg.weak_scaling) {
    pa.erase("tasks");
    pb.erase("tasks");
  }
  return pa == pb;
}

double median_throughput(const json& cell) {
  const json& s = cell["summary"]["throughput_per_s"];
  return s.is_object() ? s["median"].get<double>() : 0.0;
}

json gbench_entry(const CellResult& c, const std::string& name, int reps) {
  return {{"name", name},        {"run_name", name},
          {"family_index", 0},   {"per_family_instance_index", 0},
          {"repetitions", reps}, {"threads", c.workers},
          {"time_unit", "ns"}};
}

}  // namespace

json config_to_json(const RunConfig& cfg) {
  return {{"suite", cfg.suite},
          {"workloads", cfg.workloads},
          {"models", cfg.models},
          {"workers", cfg.workers},
          {"repetitions", cfg.repetitions},
          {"min_time_s", cfg.min_time_s},
          {"timeout_s", cfg.timeout_s},
          {"params", cfg.params},
          {"seed", cfg.seed},
          {"scaling", cfg.weak_scaling ? "weak" : "strong"},
          {"interleave", cfg.interleave}};
}

json cell_to_json(const CellResult& c) {
  json reps = json::array();
  for (const auto& r : c.repetitions) reps.push_back(repetition_to_json(r));
  return {{"workload", c.workload},
          {"model", c.model},
          {"workers", c.workers},
          {"params", c.params},
          {"workload_params", c.workload_params},
          {"workload_origin", c.workload_origin},
          {"status", c.status},
          {"error", c.error.empty() ? json(nullptr) : json(c.error)},
          {"setup_ns", c.setup_ns},
          {"teardown_ns", c.teardown_ns},
          {"warmup_wall_ns", c.warmup_wall_ns},
          {"rounds", c.rounds},
          {"tasks_per_round", c.tasks_per_round},
          {"calibration_trials", c.calibration_trials},
          {"short_repetitions_retaken", c.short_repetitions_retaken},
          {"memory", c.memory},
          {"repetitions", reps},
          {"attribution", attribution_json(c)},
          {"trace", c.trace.is_object() ? c.trace["summary"] : json(nullptr)},
          {"sched_trace", c.sched_trace},
          {"summary", summary_json(c)}};
}

namespace {

json benchmarks_of(const CellResult& c) {
  json benchmarks = json::array();
  const std::string name = c.workload + "/" + c.model + "/workers:" + std::to_string(c.workers);
  const int reps = static_cast<int>(c.repetitions.size());
  std::vector<double> real, cpu;
  for (int k = 0; k < reps; ++k) {
    const RepetitionResult& r = c.repetitions[static_cast<size_t>(k)];
    const double tasks = static_cast<double>(std::max<uint64_t>(r.tasks, 1));
    json b = gbench_entry(c, name, reps);
    b["run_type"] = "iteration";
    b["repetition_index"] = k;
    b["iterations"] = r.tasks;
    b["real_time"] = static_cast<double>(r.wall_ns) / tasks;
    b["cpu_time"] = static_cast<double>(r.cpu_user_ns + r.cpu_sys_ns) / tasks;
    b["items_per_second"] = r.throughput_per_s;
    for (Counter k2 : kReportCounters)
      if (auto v = r.counters.get(k2))
        b[std::string(counter_name(k2))] = static_cast<double>(*v) / tasks;
    if (!r.verified) b["error_occurred"] = true, b["error_message"] = "did not verify";
    benchmarks.push_back(b);
    real.push_back(b["real_time"]);
    cpu.push_back(b["cpu_time"]);
  }
  if (reps < 2) return benchmarks;
  const Summary sr = summarize(real), sc = summarize(cpu);
  const std::pair<const char*, std::pair<double, double>> aggs[] = {
      {"mean", {sr.mean, sc.mean}},
      {"median", {sr.median, sc.median}},
      {"stddev", {sr.stddev, sc.stddev}}};
  for (const auto& [agg, vals] : aggs) {
    json b = gbench_entry(c, name + "_" + agg, reps);
    b["run_name"] = name;
    b["run_type"] = "aggregate";
    b["aggregate_name"] = agg;
    b["aggregate_unit"] = "time";
    b["iterations"] = reps;
    b["real_time"] = vals.first;
    b["cpu_time"] = vals.second;
    benchmarks.push_back(b);
  }
  return benchmarks;
}

}  // namespace

ReportBuilder::ReportBuilder(RunConfig cfg, json context)
    : cfg_(std::move(cfg)), context_(std::move(context)) {}

void ReportBuilder::add(const CellResult& c) {
  json cell = cell_to_json(c);
  // A model's own serial baseline (cpython.* models divide by cpython.serial, whose tasks ran
  // with the same parameters); a model the registry does not know keeps "serial".
  const ModelInfo* info = find_model(c.model);
  cell["serial_baseline"] = info ? info->serial_baseline : "serial";
  if (info) cell["latency_means"] = info->latency_means;
  cell["convoy"] = convoy_json(cell, info);
  results_.push_back(std::move(cell));
  for (json& b : benchmarks_of(c)) benchmarks_.push_back(std::move(b));

  // Strong scaling: the same tasks at every worker count, so speedup is a throughput ratio
  // against the same model at one worker, and speedup_vs_serial against the serial model. A new
  // cell can be the base of an earlier one (a sweep need not put one worker first), so every
  // cell of its workload is redone: a pass over a few fields, not a conversion.
  const json& workload = results_.back()["workload"];
  cell_text_.emplace_back();
  std::vector<size_t> same;  // the workload's cells: only they can be each other's bases
  for (size_t i = 0; i < results_.size(); ++i)
    if (results_[i]["workload"] == workload) same.push_back(i);
  for (size_t i : same) {
    json& cell = results_[i];
    cell_text_[i].clear();  // redumped at the next partial write
    if (!cell["summary"]["throughput_per_s"].is_object()) continue;
    const std::string baseline = cell["serial_baseline"].get<std::string>();
    const double mine = median_throughput(cell);
    for (size_t k : same) {
      const json& other = results_[k];
      if (other["status"] != "ok" || !same_tasks(cfg_, cell, other)) continue;
      const double base = median_throughput(other);
      if (base <= 0) continue;
      if (other["model"] == cell["model"] && other["workers"] == 1)
        cell["summary"]["speedup"] = mine / base;
      if (other["model"] == baseline) cell["summary"]["speedup_vs_serial"] = mine / base;
    }
  }
}

json ReportBuilder::header(bool complete) const {
  return {{"schema_version", kSchemaVersion},
          {"generator", "concbench bench_runner"},
          {"complete", complete},
          {"config", config_to_json(cfg_)},
          {"context", context_}};
}

json ReportBuilder::report(bool complete) const {
  json r = header(complete);
  r["results"] = results_;
  r["benchmarks"] = benchmarks_;
  return r;
}

void ReportBuilder::write(const std::string& path, bool complete) {
  if (!complete) {
    // A partial report is compact and made of each cell's text, dumped when the cell (or a
    // speedup in it) last changed: dumping every cell per write made the writes after each cell
    // quadratic in the report's size (2.7 MB for the smoke suite). The same document as
    // report(false): the benchmarks, the header's fields, then the results.
    for (; benchmarks_dumped_ < benchmarks_.size(); ++benchmarks_dumped_) {
      if (benchmarks_dumped_ > 0) benchmarks_text_ += ",\n";
      benchmarks_text_ += benchmarks_[benchmarks_dumped_].dump();
    }
    std::string text = "{\"benchmarks\":[\n" + benchmarks_text_ + "],";
    const json head = header(false);  // named: items() would outlive a temporary
    for (const auto& [k, v] : head.items()) text += json(k).dump() + ":" + v.dump() + ",";
    text += "\"results\":[\n";
    for (size_t i = 0; i < results_.size(); ++i) {
      if (cell_text_[i].empty()) cell_text_[i] = results_[i].dump();
      text += (i ? ",\n" : "") + cell_text_[i];
    }
    text += "]}\n";
    write_text_atomic(path, text);
    return;
  }
  // The cells move into the document for the write and back after it, thrown or not, instead of
  // being copied.
  json r = header(complete);
  r["results"] = std::move(results_);
  r["benchmarks"] = std::move(benchmarks_);
  struct Restore {
    json& r;
    json& results;
    json& benchmarks;
    ~Restore() {
      results = std::move(r["results"]);
      benchmarks = std::move(r["benchmarks"]);
    }
  } restore{r, results_, benchmarks_};
  write_report_atomic(path, r);
}

json make_report(const RunConfig& cfg, const json& context, const std::vector<CellResult>& cells,
                 bool complete) {
  ReportBuilder b(cfg, context);
  for (const CellResult& c : cells) b.add(c);
  return b.report(complete);
}

void check_writable(const std::string& path, bool overwrite) {
  namespace fs = std::filesystem;
  if (path.empty()) throw UsageError("--out: empty path");
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw UsageError("--out: '" + path + "' is a directory");
  if (!overwrite && fs::exists(fs::symlink_status(path, ec)))
    throw UsageError("--out: '" + path + "' exists; pass --overwrite to replace it");
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    throw UsageError("--out: directory '" + dir.string() + "' does not exist");
  // Probe with a real file, as access(2) is wrong for root and for read-only mounts.
  const std::string probe = (dir / (".concbench-probe-" + std::to_string(getpid()))).string();
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw UsageError("--out: cannot write in '" + dir.string() + "': " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

void write_report_atomic(const std::string& path, const json& report) {
  write_text_atomic(path, report.dump(2) + "\n");
}

void write_text_atomic(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / (fs::path(path).filename().string() + ".tmp.XXXXXX")).string();
  int fd = mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error("cannot create a temporary file beside " + path + ": " +
                             std::strerror(errno));
  size_t off = 0;
  bool ok = true;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  // fsync before rename: otherwise a power loss can leave the new name pointing at an empty file.
  ok = ok && ::fchmod(fd, 0644) == 0 && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : saved;
    ::unlink(tmpl.c_str());
    throw std::runtime_error("cannot write report " + path + ": " + std::strerror(e));
  }
}

std::string format_table(const json& report) {
  const std::vector<std::string> head = {
      "workload", "model",     "workers",     "tasks",      "time/task",  "throughput/s", "+-95%",
      "speedup",  "vs serial", "p99 latency", "ctxsw/task", "migrations", "status"};
  std::vector<std::vector<std::string>> rows;
  std::vector<std::pair<std::string, std::vector<std::string>>> meanings;  // meaning -> models
  for (const json& c : report.at("results")) {
    if (auto it = c.find("latency_means"); it != c.end() && it->is_string()) {
      const std::string m = c["model"].is_string() ? c["model"].get<std::string>() : "?";
      auto slot = std::find_if(meanings.begin(), meanings.end(),
                               [&](const auto& e) { return e.first == it->get<std::string>(); });
      if (slot == meanings.end())
        meanings.push_back({it->get<std::string>(), {m}});
      else if (std::find(slot->second.begin(), slot->second.end(), m) == slot->second.end())
        slot->second.push_back(m);
    }
    // A swept parameter's value beside the workload: "cpu.spin units=100".
    std::string label = c["workload"];
    if (const json* cp = report.contains("config") ? &report["config"] : nullptr;
        cp && cp->contains("params") && (*cp)["params"].is_object() && c["params"].is_object())
      for (const auto& [k, v] : (*cp)["params"].items())
        if (auto it = c["params"].find(k); it != c["params"].end() && *it != v && it->is_string())
          label += " " + k + "=" + it->get<std::string>();
    std::vector<std::string> row = {label, c["model"], std::to_string(c["workers"].get<int>())};
    const json& s = c["summary"];
    const json& reps = c["repetitions"];
    if (s["throughput_per_s"].is_object() && !reps.empty()) {
      const json& t = s["throughput_per_s"];
      const double med = t["median"], lo = t["ci95"][0], hi = t["ci95"][1];
      uint64_t tasks = reps[0]["tasks"];
      // Medians across repetitions for the per-repetition figures.
      std::vector<double> p99, cs, mig;
      // A report from elsewhere may lack a counter: const operator[] on a missing key is
      // undefined behaviour in nlohmann::json, so every optional field is looked up.
      auto number = [](const json& obj, const char* key) -> std::optional<double> {
        auto it = obj.find(key);
        if (it == obj.end() || !it->is_number()) return std::nullopt;
        return it->get<double>();
      };
      for (const json& r : reps) {
        if (!r["verified"].get<bool>()) continue;
        if (auto v = number(r["task_latency_ns"], "p99")) p99.push_back(*v);
        const double n = std::max<double>(1, r["tasks"].get<double>());
        if (auto v = number(r["counters"], "context_switches")) cs.push_back(*v / n);
        if (auto v = number(r["counters"], "cpu_migrations")) mig.push_back(*v);
      }
      auto med_of = [](const std::vector<double>& v) { return summarize(v).median; };
      row.push_back(std::to_string(tasks));
      const json& per_task = s["wall_ns_per_task"];
      row.push_back(per_task.is_object() ? table::time_ns(per_task["median"].get<double>()) : "-");
      row.push_back(table::num(med, "%.4g"));
      row.push_back(med > 0 ? table::num(100.0 * (hi - lo) / 2 / med, "%.1f%%") : "-");
      row.push_back(s["speedup"].is_null() ? "-" : table::num(s["speedup"].get<double>(), "%.2fx"));
      row.push_back(s["speedup_vs_serial"].is_null()
                        ? "-"
                        : table::num(s["speedup_vs_serial"].get<double>(), "%.2fx"));
      row.push_back(p99.empty() ? "-" : table::time_ns(med_of(p99)));
      row.push_back(cs.empty() ? "n/a" : table::num(med_of(cs), "%.3g"));
      row.push_back(mig.empty() ? "n/a" : table::num(med_of(mig), "%.0f"));
    } else {
      for (int i = 0; i < 9; ++i) row.push_back("-");
    }
    row.push_back(c["status"]);
    rows.push_back(std::move(row));
  }
  std::vector<table::Align> align(head.size(), table::Align::right);
  align[0] = align[1] = align.back() = table::Align::left;
  std::string out = table::render(head, rows, align);
  // The latency column means one thing per model, said here rather than left to guess.
  for (const auto& [meaning, models] : meanings) {
    std::string names;
    for (const auto& m : models) names += (names.empty() ? "" : ", ") + m;
    out += "p99 latency, " + names + ": " + meaning + "\n";
  }
  return out;
}

}  // namespace concbench
