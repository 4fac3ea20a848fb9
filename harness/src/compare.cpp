#include "concbench/compare.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "concbench/stats.hpp"
#include "table.hpp"

namespace concbench {
namespace {

using nlohmann::json;

// Within this factor two models "tie": closer than run-to-run noise on a quiet machine.
constexpr double kTieMargin = 1.05;

using CellKey = std::tuple<std::string, std::string, int>;  // workload, model, workers

CellKey key_of(const json& cell) {
  return {cell["workload"].get<std::string>(), cell["model"].get<std::string>(),
          cell["workers"].get<int>()};
}

std::string key_name(const CellKey& k) {
  return std::get<0>(k) + "/" + std::get<1>(k) + "/workers:" + std::to_string(std::get<2>(k));
}

// Reports written before cells carried serial_baseline: cpython.* models divide by
// cpython.serial, everything else by serial.
std::string baseline_of(const json& cell) {
  if (cell.contains("serial_baseline")) return cell["serial_baseline"].get<std::string>();
  return cell["model"].get<std::string>().rfind("cpython.", 0) == 0 ? "cpython.serial" : "serial";
}

// Time per task and throughput of each verified repetition.
struct Samples {
  std::vector<double> time, throughput;
};

Samples samples_of(const json& cell) {
  Samples s;
  for (const json& r : cell["repetitions"]) {
    const auto tasks = r["tasks"].get<uint64_t>();
    if (!r["verified"].get<bool>() || tasks == 0) continue;
    s.time.push_back(r["wall_ns"].get<double>() / static_cast<double>(tasks));
    s.throughput.push_back(r["throughput_per_s"].get<double>());
  }
  return s;
}

double median(const std::vector<double>& v) {
  return summarize(v).median;
}

// One report, indexed: cells by key, and each workload's serial baseline medians.
struct Indexed {
  std::string path, label;
  const json* report = nullptr;
  std::map<CellKey, const json*> cells;
  // (workload, baseline model) -> median time per task and throughput of that model at 1 worker.
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> serial;

  // The baseline medians for `cell`, or nullopt when its report has no verified baseline.
  std::optional<std::pair<double, double>> baseline(const json& cell) const {
    auto it = serial.find({cell["workload"].get<std::string>(), baseline_of(cell)});
    if (it == serial.end()) return std::nullopt;
    return it->second;
  }
};

Indexed index_report(const LoadedReport& r, const std::string& label) {
  Indexed ix;
  ix.path = r.path;
  ix.label = label;
  ix.report = &r.report;
  for (const json& c : r.report["results"]) {
    ix.cells.emplace(key_of(c), &c);
    if (c["workers"] != 1 || c["status"] != "ok") continue;
    Samples s = samples_of(c);
    if (s.time.empty()) continue;
    const double t = median(s.time), thr = median(s.throughput);
    if (t > 0 && thr > 0) ix.serial[{c["workload"], c["model"]}] = {t, thr};
  }
  return ix;
}

// A context field by dotted path; null when absent.
json ctx_at(const json& ctx, const std::string& path) {
  const json* cur = &ctx;
  std::istringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!cur->is_object() || !cur->contains(part)) return nullptr;
    cur = &(*cur)[part];
  }
  return *cur;
}

// What a reader needs to tell two machines apart, in one line.
std::string machine_line(const json& report) {
  const json& ctx = report["context"];
  auto text = [&](const char* path) {
    json v = ctx_at(ctx, path);
    return v.is_string() ? v.get<std::string>() : v.is_null() ? std::string("?") : v.dump();
  };
  std::string kernel = text("kernel");
  if (const size_t sp = kernel.find(' ', kernel.find(' ') + 1); sp != std::string::npos)
    kernel = kernel.substr(0, sp);  // "Linux 6.1.0-13-amd64", without the build stamp
  return text("hostname") + ": " + text("cpu_model") + ", " + text("cpus_allowed") + " of " +
         text("logical_cpus") + " CPUs, " + kernel + ", " + text("compiler.id") + " " +
         text("compiler.version") + " " + text("build_type") + ", " + text("date");
}

// Fields whose difference changes what a number means. Values are compared as JSON.
constexpr const char* kMachineFields[] = {"cpu_model",
                                          "logical_cpus",
                                          "cpus_allowed",
                                          "physical_cores",
                                          "topology.packages",
                                          "topology.numa_nodes",
                                          "mhz_per_cpu",
                                          "kernel",
                                          "virtualized",
                                          "container",
                                          "compiler.id",
                                          "compiler.version",
                                          "compiler.flags",
                                          "build_type",
                                          "library_build_type",
                                          "python.version",
                                          "python.implementation",
                                          "python.gil_enabled",
                                          "python.switch_interval_s"};
constexpr const char* kConfigFields[] = {"suite", "scaling", "seed", "min_time_s"};

json counters_available(const json& ctx) {
  json missing = json::array();
  if (ctx.contains("counters_unavailable") && ctx["counters_unavailable"].is_object())
    for (const auto& [name, why] : ctx["counters_unavailable"].items()) missing.push_back(name);
  return missing;
}

json context_diff(const json& base, const json& other) {
  json diff = json::array();
  for (const char* f : kMachineFields) {
    json a = ctx_at(base["context"], f), b = ctx_at(other["context"], f);
    if (a != b) diff.push_back({{"field", f}, {"base", a}, {"new", b}});
  }
  json ua = counters_available(base["context"]), ub = counters_available(other["context"]);
  if (ua != ub) diff.push_back({{"field", "counters_unavailable"}, {"base", ua}, {"new", ub}});
  for (const char* f : kConfigFields) {
    json a = ctx_at(base["config"], f), b = ctx_at(other["config"], f);
    if (a != b) diff.push_back({{"field", std::string("config.") + f}, {"base", a}, {"new", b}});
  }
  return diff;
}

json compare_cell(const CellKey& key, const json* a, const json* b, const Indexed& base,
                  const Indexed& other, const CompareOptions& opt) {
  json out = {{"workload", std::get<0>(key)},
              {"model", std::get<1>(key)},
              {"workers", std::get<2>(key)},
              {"base_status", a ? (*a)["status"] : json(nullptr)},
              {"new_status", b ? (*b)["status"] : json(nullptr)},
              {"gate", false}};
  auto state = [&](const char* s) {
    out["state"] = s;
    return out;
  };
  if (!a) return state("only_in_new");
  if (!b) return state("only_in_base");
  if ((*a)["params"] != (*b)["params"]) return state("params_differ");
  if ((*a)["status"] != "ok") return state("failed_in_base");
  if ((*b)["status"] != "ok") {
    out["gate"] = opt.fail_on_regression_pct.has_value();
    return state("failed_in_new");
  }
  Samples sa = samples_of(*a), sb = samples_of(*b);
  if (sa.time.empty() || sb.time.empty()) return state("no_verified_repetitions");
  if (opt.normalize) {
    auto ba = base.baseline(*a), bb = other.baseline(*b);
    if (!ba || !bb) return state("no_serial_baseline");
    for (double& t : sa.time) t /= ba->first;
    for (double& t : sb.time) t /= bb->first;
    for (double& t : sa.throughput) t /= ba->second;
    for (double& t : sb.throughput) t /= bb->second;
  }
  const double ta = median(sa.time), tb = median(sb.time);
  const double qa = median(sa.throughput), qb = median(sb.throughput);
  if (ta <= 0 || tb <= 0 || qa <= 0 || qb <= 0) return state("no_verified_repetitions");
  const MannWhitney mw = mann_whitney_u(sa.time, sb.time);
  const char* sig = mw.min_p_value > opt.alpha ? "too few repetitions"
                    : mw.p_value < opt.alpha   ? "significant"
                                               : "not significant";
  const double change = (tb / ta - 1) * 100;
  out["time"] = {{"base", ta}, {"new", tb}, {"ratio", tb / ta}};
  out["throughput"] = {{"base", qa}, {"new", qb}, {"ratio", qb / qa}};
  out["unit"] = opt.normalize ? "time per task / serial's" : "ns per task";
  out["change_pct"] = change;
  out["test"] = {{"u", mw.u},
                 {"p_value", mw.p_value},
                 {"method", mw.exact ? "exact" : "normal approximation"},
                 {"n_base", sa.time.size()},
                 {"n_new", sb.time.size()}};
  out["significance"] = sig;
  out["gate"] = opt.fail_on_regression_pct && std::string(sig) == "significant" &&
                change > *opt.fail_on_regression_pct;
  return state("compared");
}

json compare_pair(const Indexed& base, const Indexed& other, const CompareOptions& opt) {
  json cells = json::array();
  // Base order first, then what only the new report has, so tables read like the base report.
  for (const json& c : (*base.report)["results"]) {
    const CellKey k = key_of(c);
    auto it = other.cells.find(k);
    cells.push_back(
        compare_cell(k, &c, it == other.cells.end() ? nullptr : it->second, base, other, opt));
  }
  for (const json& c : (*other.report)["results"])
    if (!base.cells.count(key_of(c)))
      cells.push_back(compare_cell(key_of(c), nullptr, &c, base, other, opt));

  double log_time = 0, log_thr = 0;
  size_t n = 0;
  json gating = json::array();
  for (const json& c : cells) {
    if (c["gate"].get<bool>())
      gating.push_back(key_name({c["workload"], c["model"], c["workers"].get<int>()}));
    if (c["state"] != "compared") continue;
    log_time += std::log(c["time"]["ratio"].get<double>());
    log_thr += std::log(c["throughput"]["ratio"].get<double>());
    ++n;
  }
  json warnings = json::array();
  if (!(*other.report)["complete"].get<bool>())
    warnings.push_back(other.label + " is incomplete: its run was interrupted");
  const json diff = context_diff(*base.report, *other.report);
  if (!diff.empty())
    warnings.push_back(
        "the machines or runs differ (see context_diff): ratios mix the change under test with "
        "the difference in setup");
  return {
      {"new",
       {{"path", other.path}, {"label", other.label}, {"machine", machine_line(*other.report)}}},
      {"context_diff", diff},
      {"warnings", warnings},
      {"cells", cells},
      {"geomean",
       {{"cells", n},
        {"time_ratio", n ? json(std::exp(log_time / static_cast<double>(n))) : json(nullptr)},
        {"throughput_ratio",
         n ? json(std::exp(log_thr / static_cast<double>(n))) : json(nullptr)}}},
      {"gating", gating}};
}

// Per workload and report: each model's best cell (highest median throughput over its worker
// counts) as a multiple of that report's serial baseline.
struct Best {
  int workers = 0;
  double vs_serial = 0;
};

std::map<std::string, std::map<std::string, Best>> best_cells(const Indexed& ix) {
  std::map<std::string, std::map<std::string, Best>> out;
  for (const auto& [key, cell] : ix.cells) {
    if ((*cell)["status"] != "ok") continue;
    auto base = ix.baseline(*cell);
    Samples s = samples_of(*cell);
    if (!base || s.throughput.empty()) continue;
    const double v = median(s.throughput) / base->second;
    Best& b = out[std::get<0>(key)][std::get<1>(key)];
    if (v > b.vs_serial) b = {std::get<2>(key), v};
  }
  return out;
}

const char* relation(double ratio) {
  return ratio >= kTieMargin ? "beats" : ratio <= 1 / kTieMargin ? "loses to" : "ties with";
}

// Model-versus-model conclusions: for each workload, the base report's winner against every other
// model, in every report. A conclusion holds when the relation (beats, ties with, loses to) is
// the same in all of them.
json conclusions(const std::vector<Indexed>& all) {
  std::vector<std::map<std::string, std::map<std::string, Best>>> bests;
  for (const Indexed& ix : all) bests.push_back(best_cells(ix));
  json out = json::array();
  for (const auto& [workload, models] : bests[0]) {
    std::string winner;
    double top = 0;
    for (const auto& [model, b] : models)
      if (b.vs_serial > top) winner = model, top = b.vs_serial;
    if (winner.empty()) continue;
    for (const auto& [model, b] : models) {
      if (model == winner) continue;
      json per = json::array();
      bool complete = true, holds = true;
      std::string first;
      for (size_t i = 0; i < all.size(); ++i) {
        auto w = bests[i].find(workload);
        if (w == bests[i].end() || !w->second.count(winner) || !w->second.count(model)) {
          complete = false;
          break;
        }
        const Best& bw = w->second.at(winner);
        const Best& bm = w->second.at(model);
        const double ratio = bw.vs_serial / bm.vs_serial;
        const std::string rel = relation(ratio);
        if (i == 0) first = rel;
        holds = holds && rel == first;
        per.push_back({{"report", all[i].label},
                       {"ratio", ratio},
                       {"relation", rel},
                       {"winner_workers", bw.workers},
                       {"winner_vs_serial", bw.vs_serial},
                       {"other_workers", bm.workers},
                       {"other_vs_serial", bm.vs_serial}});
      }
      if (!complete) continue;
      out.push_back({{"workload", workload},
                     {"model", winner},
                     {"other", model},
                     {"holds", holds},
                     {"reports", per}});
    }
  }
  return out;
}

std::string status_text(const json& c) {
  const std::string s = c["state"];
  if (s == "only_in_base") return "missing in new";
  if (s == "only_in_new") return "new cell";
  if (s == "params_differ") return "params differ";
  if (s == "failed_in_base") return "base " + c["base_status"].get<std::string>();
  if (s == "failed_in_new") return "FAILED: " + c["new_status"].get<std::string>();
  if (s == "no_serial_baseline") return "no serial baseline";
  if (s == "no_verified_repetitions") return "nothing verified";
  const std::string sig = c["significance"];
  const double change = c["change_pct"];
  const char* dir = change > 0 ? "slower" : "faster";
  if (sig == "significant") return std::string(dir) + (c["gate"].get<bool>() ? ", REGRESSION" : "");
  if (sig == "not significant") return "no significant change";
  return "too few repetitions";
}

std::string signed_pct(double pct) {
  return table::num(pct, "%+.1f%%");
}

std::string value_text(double v, bool normalized) {
  return normalized ? table::num(v, "%.3f") : table::time_ns(v);
}

std::string value_repr(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s = "[";
    for (const json& x : v) {
      if (s.size() > 1) s += ",";
      s += x.is_string() ? x.get<std::string>() : x.dump();
    }
    return s + "]";
  }
  return v.dump();
}

std::string format_text(const json& cmp, bool md) {
  std::ostringstream out;
  const bool normalized = cmp["options"]["normalize"].get<bool>();
  const json& base = cmp["base"];
  auto heading = [&](const std::string& h) {
    out << (md ? "### " : "") << h << "\n" << (md ? "\n" : "");
  };
  auto item = [&](const std::string& s) { out << (md ? "- " : "  ") << s << "\n"; };
  for (const json& c : cmp["comparisons"]) {
    heading(base["label"].get<std::string>() + " -> " + c["new"]["label"].get<std::string>());
    item("BASE " + base["path"].get<std::string>() + " (" + base["machine"].get<std::string>() +
         ")");
    item("NEW  " + c["new"]["path"].get<std::string>() + " (" +
         c["new"]["machine"].get<std::string>() + ")");
    for (const json& w : c["warnings"]) item("warning: " + w.get<std::string>());
    for (const json& d : c["context_diff"])
      item("differs: " + d["field"].get<std::string>() + ": " + value_repr(d["base"]) + " -> " +
           value_repr(d["new"]));
    out << "\n";
    const std::vector<std::string> head = {"workload",
                                           "model",
                                           "workers",
                                           normalized ? "base t/serial" : "base time/task",
                                           normalized ? "new t/serial" : "new time/task",
                                           "time",
                                           "throughput",
                                           "p",
                                           "n",
                                           "verdict"};
    std::vector<std::vector<std::string>> rows;
    size_t only_new = 0;
    for (const json& cell : c["cells"]) {
      if (cell["state"] == "only_in_new") {
        ++only_new;  // listed in --format json; a table of dashes would hide the real rows
        continue;
      }
      std::vector<std::string> row = {cell["workload"], cell["model"], cell["workers"].dump()};
      if (cell["state"] == "compared") {
        row.push_back(value_text(cell["time"]["base"], normalized));
        row.push_back(value_text(cell["time"]["new"], normalized));
        row.push_back(signed_pct(cell["change_pct"]));
        row.push_back(signed_pct((cell["throughput"]["ratio"].get<double>() - 1) * 100));
        row.push_back(table::num(cell["test"]["p_value"], "%.3g"));
        row.push_back(cell["test"]["n_base"].dump() + "/" + cell["test"]["n_new"].dump());
      } else {
        row.insert(row.end(), 6, "-");
      }
      row.push_back(status_text(cell));
      rows.push_back(std::move(row));
    }
    using table::Align;
    out << table::render(head, rows,
                         {Align::left, Align::left, Align::right, Align::right, Align::right,
                          Align::right, Align::right, Align::right, Align::right, Align::left},
                         md);
    out << "\n";
    if (only_new) item(std::to_string(only_new) + " cell(s) only in NEW, not compared");
    const json& g = c["geomean"];
    if (g["cells"].get<size_t>() > 0)
      item("geometric mean over " + g["cells"].dump() + " cell(s): time x" +
           table::num(g["time_ratio"], "%.3f") + ", throughput x" +
           table::num(g["throughput_ratio"], "%.3f"));
    else
      item("no cell could be compared");
    if (!cmp["options"]["fail_on_regression_pct"].is_null()) {
      const std::string pct = table::num(cmp["options"]["fail_on_regression_pct"], "%g");
      if (c["gating"].empty())
        item("gate: no significant regression beyond " + pct + "% and no cell newly failing");
      else
        for (const json& name : c["gating"])
          item("gate: REGRESSION " + name.get<std::string>() + " (beyond " + pct +
               "% or newly failing)");
    }
    out << "\n";
  }
  const json& concl = cmp["conclusions"];
  if (normalized && !concl.empty()) {
    heading("Conclusions (best worker count per model, against each report's serial baseline)");
    for (const json& k : concl) {
      // "holds: process_pool beats gil_threads on cpu.pidigits: 1.90x (here.json, 2w vs 1w),
      // 15.7x (there.json, 16w vs 1w)"
      std::ostringstream line;
      const bool holds = k["holds"].get<bool>();
      line << (holds ? "holds: " : "DIFFERS: ") << k["model"].get<std::string>() << " "
           << (holds ? k["reports"][0]["relation"].get<std::string>() : std::string("vs")) << " "
           << k["other"].get<std::string>() << " on " << k["workload"].get<std::string>() << ":";
      const char* sep = " ";
      for (const json& r : k["reports"]) {
        line << sep;
        if (!holds) line << r["relation"].get<std::string>() << " ";
        line << table::num(r["ratio"], "%.2fx") << " (" << r["report"].get<std::string>() << ", "
             << r["winner_workers"] << "w vs " << r["other_workers"] << "w)";
        sep = ", ";
      }
      const std::string s = line.str();
      item(s);
    }
  }
  return out.str();
}

// Short, distinct labels: file names, or the whole path where file names repeat; the same file
// given twice gets "#2".
std::vector<std::string> labels_for(const std::vector<LoadedReport>& reports) {
  namespace fs = std::filesystem;
  std::map<std::string, int> name_count;
  for (const auto& r : reports) ++name_count[fs::path(r.path).filename().string()];
  std::vector<std::string> labels;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < reports.size(); ++i) {
    const std::string name = fs::path(reports[i].path).filename().string();
    std::string label = name_count[name] > 1 ? reports[i].path : name;
    if (const int n = ++seen[label]; n > 1) label.append("#").append(std::to_string(n));
    labels.push_back(label);
  }
  return labels;
}

}  // namespace

json compare_reports(const std::vector<LoadedReport>& reports, const CompareOptions& opt) {
  std::vector<std::string> labels = labels_for(reports);
  std::vector<Indexed> ix;
  for (size_t i = 0; i < reports.size(); ++i) ix.push_back(index_report(reports[i], labels[i]));
  json out = {{"kind", "concbench-compare"},
              {"version", 1},
              {"options",
               {{"normalize", opt.normalize},
                {"alpha", opt.alpha},
                {"fail_on_regression_pct",
                 opt.fail_on_regression_pct ? json(*opt.fail_on_regression_pct) : json(nullptr)}}}};
  if (ix.empty()) return out;
  out["base"] = {
      {"path", ix[0].path}, {"label", ix[0].label}, {"machine", machine_line(*ix[0].report)}};
  json comparisons = json::array();
  for (size_t i = 1; i < ix.size(); ++i) comparisons.push_back(compare_pair(ix[0], ix[i], opt));
  out["comparisons"] = comparisons;
  out["conclusions"] = conclusions(ix);
  size_t gating = 0;
  for (const json& c : comparisons) gating += c["gating"].size();
  out["gating_cells"] = gating;
  return out;
}

std::string format_comparison(const json& cmp, CompareFormat format) {
  if (format == CompareFormat::json) return cmp.dump(2) + "\n";
  return format_text(cmp, format == CompareFormat::markdown);
}

int comparison_exit_code(const json& cmp) {
  return !cmp["options"]["fail_on_regression_pct"].is_null() &&
                 cmp.value("gating_cells", size_t{0}) > 0
             ? 1
             : 0;
}

}  // namespace concbench
