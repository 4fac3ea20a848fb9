#include "concbench/compare.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "concbench/model.hpp"
#include "concbench/params.hpp"
#include "concbench/stats.hpp"
#include "concbench/workload.hpp"
#include "table.hpp"

namespace concbench {
namespace {

using nlohmann::json;

using CellKey = std::tuple<std::string, std::string, int, std::string>;  // + params, dumped
using Triple = std::tuple<std::string, std::string, int>;                // workload, model, workers

// The value `key` takes in a cell that does not set it: the default its workload or its model
// declares in this build; nullopt where neither declares it (a workload or model this build
// lacks, such as the cpython.* models outside the Python module).
std::optional<std::string> declared_default(const json& cell, const std::string& key) {
  if (const Workload* w = find_workload(cell["workload"].get<std::string>()))
    for (const ParamSpec& p : w->params())
      if (p.name == key) return p.default_value;
  if (const ModelInfo* m = find_model(cell["model"].get<std::string>()))
    for (const ParamSpec& p : m->params)
      if (p.name == key) return p.default_value;
  return std::nullopt;
}

// A cell's parameters less those at their declared default. A parameter is added to a workload
// or model with the default that keeps what it did before, so a report written before it (which
// lacks the key) and one written after (which has it at its default) measured the same thing.
json canonical_params(const json& cell) {
  json out = json::object();
  for (const auto& [k, v] : cell["params"].items()) {
    const std::optional<std::string> d = declared_default(cell, k);
    if (d && v.is_string() && v.get<std::string>() == *d) continue;
    out[k] = v;
  }
  return out;
}

// nlohmann's objects keep their keys sorted, so the dump of params is the same for the same map.
CellKey key_of(const json& cell) {
  return {cell["workload"].get<std::string>(), cell["model"].get<std::string>(),
          cell["workers"].get<int>(), canonical_params(cell).dump()};
}

Triple triple_of(const json& cell) {
  return {cell["workload"].get<std::string>(), cell["model"].get<std::string>(),
          cell["workers"].get<int>()};
}

std::string params_text(const json& params) {
  std::string s;
  for (const auto& [k, v] : params.items())
    s += (s.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

// "cpu.spin/serial/workers:1", and its parameters where another cell shares that name.
std::string cell_name(const json& cell, bool with_params) {
  std::string name = cell["workload"].get<std::string>() + "/" + cell["model"].get<std::string>() +
                     "/workers:" + cell["workers"].dump();
  if (with_params) name += " {" + params_text(cell["params"]) + "}";
  return name;
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

// A verified serial cell at one worker, which the other models of its workload divide by.
struct Baseline {
  const json* cell = nullptr;
  Samples samples;
  double time = 0, throughput = 0;  // medians
};

// True when every parameter of `sub` has the same value in `cell`: a model's cell carries the
// workload's parameters (those of its serial cell) and its own on top.
bool params_within(const json& sub, const json& cell) {
  for (const auto& [k, v] : sub.items())
    if (!cell.contains(k) || cell[k] != v) return false;
  return true;
}

// One report, indexed: cells by key, and each workload's serial baselines.
struct Indexed {
  std::string path, label;
  const json* report = nullptr;
  std::map<CellKey, const json*> cells;
  // (workload, baseline model) -> its verified cells at 1 worker: one per parameter set run.
  std::map<std::pair<std::string, std::string>, std::vector<Baseline>> serial;

  // The baseline for `cell`, or nullptr when its report has no verified one. Where a workload
  // ran with several parameter sets, the one whose parameters `cell` shares.
  const Baseline* baseline(const json& cell) const {
    auto it = serial.find({cell["workload"].get<std::string>(), baseline_of(cell)});
    if (it == serial.end()) return nullptr;
    if (it->second.size() == 1) return &it->second[0];
    for (const Baseline& b : it->second)
      if (params_within((*b.cell)["params"], cell["params"])) return &b;
    return nullptr;
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
    if (t > 0 && thr > 0) ix.serial[{c["workload"], c["model"]}].push_back({&c, s, t, thr});
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

// A cell of BASE that NEW does not show verified gates: a gate that passes when a cell vanished
// would pass a change that deleted the benchmark it guards.
json compare_cell(const json* a, const json* b, const Indexed& base, const Indexed& other,
                  const CompareOptions& opt, bool with_params) {
  const json& any = a ? *a : *b;
  json out = {{"workload", any["workload"]},
              {"model", any["model"]},
              {"workers", any["workers"]},
              {"params", any["params"]},
              {"name", cell_name(any, with_params)},
              {"base_status", a ? (*a)["status"] : json(nullptr)},
              {"new_status", b ? (*b)["status"] : json(nullptr)},
              {"gate", false},
              {"gate_reason", nullptr}};
  auto state = [&](const char* s) {
    out["state"] = s;
    return out;
  };
  auto gate = [&](const char* why) {
    if (!opt.fail_on_regression_pct && !opt.fail_on_broken) return;
    out["gate"] = true;
    out["gate_reason"] = why;
  };
  if (!a) return state("only_in_new");
  if (!b) {
    gate("missing in new");
    return state("only_in_base");
  }
  if (canonical_params(*a) != canonical_params(*b)) {
    out["new_params"] = (*b)["params"];
    gate("missing in new");  // NEW ran something else under that name
    return state("params_differ");
  }
  if ((*a)["params"] != (*b)["params"]) {
    // Set on one side only, at its default: the same measurement (canonical_params), said so.
    json defaulted = json::object();
    for (const json* side : {a, b}) {
      const json& other_params = (side == a ? *b : *a)["params"];
      for (const auto& [k, v] : (*side)["params"].items())
        if (!other_params.contains(k)) defaulted[k] = v;
    }
    out["params_at_default"] = defaulted;
  }
  if ((*a)["status"] != "ok") return state("failed_in_base");
  if ((*b)["status"] != "ok") {
    gate("newly failing");
    return state("failed_in_new");
  }
  Samples sa = samples_of(*a), sb = samples_of(*b);
  if (sa.time.empty() || sb.time.empty()) {
    if (!sa.time.empty()) gate("nothing verified in new");
    return state("no_verified_repetitions");
  }
  if (opt.normalize) {
    const Baseline *ba = base.baseline(*a), *bb = other.baseline(*b);
    if (!ba || !bb) return state("no_serial_baseline");
    for (double& t : sa.time) t /= ba->time;
    for (double& t : sb.time) t /= bb->time;
    for (double& t : sa.throughput) t /= ba->throughput;
    for (double& t : sb.throughput) t /= bb->throughput;
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
  if (opt.fail_on_regression_pct && std::string(sig) == "significant" &&
      change > *opt.fail_on_regression_pct)
    gate("regression");
  return state("compared");
}

json compare_pair(const Indexed& base, const Indexed& other, const CompareOptions& opt) {
  // Names carry the parameters where two cells of a report share workload, model and workers.
  std::map<Triple, int> per_triple_base, per_triple_new;
  for (const auto& [k, c] : base.cells) ++per_triple_base[triple_of(*c)];
  for (const auto& [k, c] : other.cells) ++per_triple_new[triple_of(*c)];
  auto ambiguous = [&](const json& c) {
    return per_triple_base[triple_of(c)] > 1 || per_triple_new[triple_of(c)] > 1;
  };
  // A BASE cell without its exact key in NEW pairs with NEW's one unmatched cell of the same
  // workload, model and workers, if there is exactly one: "params differ" says more than a
  // cell missing here and a new one there.
  std::map<Triple, std::vector<const json*>> unmatched_new;
  for (const auto& [k, c] : other.cells)
    if (!base.cells.count(k)) unmatched_new[triple_of(*c)].push_back(c);
  std::map<Triple, int> unmatched_base;
  for (const auto& [k, c] : base.cells)
    if (!other.cells.count(k)) ++unmatched_base[triple_of(*c)];
  std::set<const json*> paired;

  json cells = json::array();
  // Base order first, then what only the new report has, so tables read like the base report.
  for (const json& c : (*base.report)["results"]) {
    const json* match = nullptr;
    if (auto it = other.cells.find(key_of(c)); it != other.cells.end()) {
      match = it->second;
    } else if (auto u = unmatched_new.find(triple_of(c)); u != unmatched_new.end() &&
                                                          u->second.size() == 1 &&
                                                          unmatched_base[triple_of(c)] == 1) {
      match = u->second[0];
      paired.insert(match);
    }
    cells.push_back(compare_cell(&c, match, base, other, opt, ambiguous(c)));
  }
  for (const json& c : (*other.report)["results"])
    if (!base.cells.count(key_of(c)) && !paired.count(&c))
      cells.push_back(compare_cell(nullptr, &c, base, other, opt, ambiguous(c)));

  double log_time = 0, log_thr = 0;
  size_t n = 0;
  json gating = json::array();
  for (const json& c : cells) {
    if (c["gate"].get<bool>()) gating.push_back(c["name"]);
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
  std::vector<double> throughput;
  const Baseline* baseline = nullptr;
};

std::map<std::string, std::map<std::string, Best>> best_cells(const Indexed& ix) {
  std::map<std::string, std::map<std::string, Best>> out;
  for (const auto& [key, cell] : ix.cells) {
    if ((*cell)["status"] != "ok") continue;
    const Baseline* base = ix.baseline(*cell);
    Samples s = samples_of(*cell);
    if (!base || s.throughput.empty()) continue;
    const double v = median(s.throughput) / base->throughput;
    Best& b = out[std::get<0>(key)][std::get<1>(key)];
    if (v > b.vs_serial) b = {std::get<2>(key), v, std::move(s.throughput), base};
  }
  return out;
}

// Below this many verified repetitions a side, the bootstrap has too little spread to go on:
// two repetitions give [min, max] of each, one gives a point.
constexpr size_t kMinConclusionRepetitions = 3;
// kBootstrapResamples and kBootstrapSeed (stats.hpp): fixed, so output repeats.

// One report's side of a conclusion: winner over other, both against their serial baselines,
// with the bootstrap interval of that ratio, and what it clearly says, if anything:
//   beats / loses to  the whole interval lies beyond 1 + min_effect (or below its inverse);
//   ties              the whole interval lies within half the minimum effect of 1, so the two
//                     models are measurably the same here (two cores' win on one core);
// anything else is unclear. Between half the minimum effect and the minimum effect lies a
// grey zone that is neither, so that run-to-run noise cannot turn a tie into a win (a 1.04x
// tie against a 1.09x "win" is within noise, not a difference).
json conclusion_in(const Best& w, const Best& o, const std::string& label,
                   const CompareOptions& opt) {
  std::vector<std::vector<double>> num = {w.throughput}, den = {o.throughput};
  if (w.baseline != o.baseline) {  // the same baseline cancels; different ones add their noise
    num.push_back(o.baseline->samples.throughput);
    den.push_back(w.baseline->samples.throughput);
  }
  const RatioInterval ci =
      bootstrap_median_ratio(num, den, 1 - opt.alpha, kBootstrapResamples, kBootstrapSeed);
  const double ratio = w.vs_serial / o.vs_serial;
  const double effect = 1 + opt.min_effect_pct / 100;
  const char* relation = "within noise";
  json why = nullptr;
  if (ci.min_n < kMinConclusionRepetitions)
    why = "too few repetitions";
  else if (const double tie = 1 + opt.min_effect_pct / 200; ci.low >= 1 / tie && ci.high <= tie)
    relation = "ties";
  else if (ci.low <= 1 && ci.high >= 1)
    why = "interval includes 1";
  else if (ci.low < effect && ci.high > 1 / effect)
    // The whole interval must clear the minimum effect, not just the ratio: run-to-run noise
    // on one machine moves a ratio by more than its interval admits (two smoke runs back to
    // back gave 1.16x [1.10, 5.62] and 0.87x [0.82, 0.95] for the same pair).
    why = "below the minimum effect";
  else
    relation = ci.low > 1 ? "beats" : "loses to";
  return {{"report", label},
          {"ratio", ratio},
          {"ci", {ci.low, ci.high}},
          {"relation", relation},
          {"clear", why.is_null()},
          {"why", why},
          {"n", {w.throughput.size(), o.throughput.size()}},
          {"winner_workers", w.workers},
          {"winner_vs_serial", w.vs_serial},
          {"other_workers", o.workers},
          {"other_vs_serial", o.vs_serial}};
}

// Model-versus-model conclusions: for each workload, the base report's winner against every other
// model, in every report. Three verdicts, because "not shown here" is not "reversed here":
// "holds" when every report says the same clear thing (beats, loses to, or ties); "differs"
// when two reports say different clear things (a clear win here, a clear tie or loss there);
// "within noise" otherwise, i.e. some report is unclear (its interval includes 1, or reaches
// into the grey zone, or too few repetitions) and no two clear ones contradict each other.
json conclusions(const std::vector<Indexed>& all, const CompareOptions& opt) {
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
      bool complete = true, all_clear = true;
      std::set<std::string> said;  // the clear relations the reports show
      for (size_t i = 0; i < all.size(); ++i) {
        auto w = bests[i].find(workload);
        if (w == bests[i].end() || !w->second.count(winner) || !w->second.count(model)) {
          complete = false;
          break;
        }
        json r = conclusion_in(w->second.at(winner), w->second.at(model), all[i].label, opt);
        if (r["clear"].get<bool>()) said.insert(r["relation"].get<std::string>());
        all_clear = all_clear && r["clear"].get<bool>();
        per.push_back(std::move(r));
      }
      if (!complete) continue;
      const char* verdict = said.size() > 1                 ? "differs"
                            : all_clear && said.size() == 1 ? "holds"
                                                            : "within noise";
      out.push_back({{"workload", workload},
                     {"model", winner},
                     {"other", model},
                     {"verdict", verdict},
                     {"holds", std::string(verdict) == "holds"},
                     {"reports", per}});
    }
  }
  return out;
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

std::string status_text(const json& c) {
  const std::string s = c["state"];
  const bool gate = c["gate"].get<bool>();
  if (s == "only_in_base") return gate ? "MISSING in new" : "missing in new";
  if (s == "only_in_new") return "new cell";
  if (s == "params_differ") {
    std::string d;
    const json &pa = c["params"], &pb = c["new_params"];
    for (const auto& [k, v] : pa.items())
      if (!pb.contains(k) || pb[k] != v)
        d += (d.empty() ? "" : ",") + k + "=" + value_repr(v) + "->" +
             (pb.contains(k) ? value_repr(pb[k]) : std::string("none"));
    for (const auto& [k, v] : pb.items())
      if (!pa.contains(k)) d += (d.empty() ? "" : ",") + k + "=none->" + value_repr(v);
    return std::string(gate ? "MISSING: " : "") + "params differ: " + d;
  }
  if (s == "failed_in_base") return "base " + c["base_status"].get<std::string>();
  if (s == "failed_in_new") return "FAILED: " + c["new_status"].get<std::string>();
  if (s == "no_serial_baseline") return "no serial baseline";
  if (s == "no_verified_repetitions") return gate ? "NOTHING VERIFIED in new" : "nothing verified";
  const std::string sig = c["significance"];
  const double change = c["change_pct"];
  const char* dir = change > 0 ? "slower" : "faster";
  if (sig == "significant") return std::string(dir) + (gate ? ", REGRESSION" : "");
  if (sig == "not significant") return "no significant change";
  return "too few repetitions";
}

std::string signed_pct(double pct) {
  return table::num(pct, "%+.1f%%");
}

std::string value_text(double v, bool normalized) {
  return normalized ? table::num(v, "%.3f") : table::time_ns(v);
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
    std::vector<std::string> only_new;
    for (const json& cell : c["cells"]) {
      if (cell["state"] == "only_in_new") {
        // Named below the table; a table of dashes would hide the real rows.
        only_new.push_back(cell["name"]);
        continue;
      }
      const std::string name = cell["name"];
      std::string workload = cell["workload"];
      if (const size_t brace = name.find(" {"); brace != std::string::npos)
        workload += name.substr(brace);  // two cells differ only in these parameters
      std::vector<std::string> row = {workload, cell["model"], cell["workers"].dump()};
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
    if (!only_new.empty()) {
      std::string names;
      for (const std::string& n : only_new) names += (names.empty() ? "" : ", ") + n;
      item(std::to_string(only_new.size()) + " cell(s) only in NEW, not compared (they do not " +
           "gate): " + names);
    }
    const json& g = c["geomean"];
    if (g["cells"].get<size_t>() > 0)
      item("geometric mean over " + g["cells"].dump() + " cell(s): time x" +
           table::num(g["time_ratio"], "%.3f") + ", throughput x" +
           table::num(g["throughput_ratio"], "%.3f"));
    else
      item("no cell could be compared");
    if (cmp["options"].value("fail_on_broken", false)) {
      const bool timed = !cmp["options"]["fail_on_regression_pct"].is_null();
      const std::string pct =
          timed ? table::num(cmp["options"]["fail_on_regression_pct"], "%g") : "";
      if (c["gating"].empty())
        item(timed ? "gate: no significant regression beyond " + pct +
                         "%, no cell of BASE newly failing or missing in NEW"
                   : "gate (failing or missing cells only, timings not gated): no cell of BASE "
                     "newly failing or missing in NEW");
      for (const json& cell : c["cells"]) {
        if (!cell["gate"].get<bool>()) continue;
        const std::string name = cell["name"], why = cell["gate_reason"];
        if (why == "regression")
          item("gate: REGRESSION " + name + " (" + signed_pct(cell["change_pct"]) +
               " time per task, significant, beyond " + pct + "%)");
        else if (why == "newly failing")
          item("gate: FAILED " + name + " (verified in BASE, " +
               cell["new_status"].get<std::string>() + " in NEW)");
        else if (why == "nothing verified in new")
          item("gate: UNVERIFIED " + name + " (verified in BASE, no verified repetition in NEW)");
        else if (cell["state"] == "params_differ")
          item("gate: MISSING " + name + " {" + params_text(cell["params"]) +
               "} (NEW ran it with {" + params_text(cell["new_params"]) + "})");
        else
          item("gate: MISSING " + name + " (in BASE, not in NEW)");
      }
    }
    out << "\n";
  }
  const json& concl = cmp["conclusions"];
  if (normalized && !concl.empty()) {
    heading("Conclusions (best worker count per model, against each report's serial baseline)");
    size_t holds = 0, differs = 0;
    for (const json& k : concl) {
      // "holds: process_pool beats gil_threads on cpu.pidigits: 1.90x [1.85, 1.96] (here.json,
      // 2w vs 1w), 15.7x [15.1, 16.0] (there.json, 16w vs 1w)"
      std::ostringstream line;
      const std::string verdict = k["verdict"];
      const bool held = verdict == "holds";
      holds += held;
      differs += verdict == "differs";
      line << (held                   ? "holds"
               : verdict == "differs" ? "DIFFERS"
                                      : "within noise")
           << ": " << k["model"].get<std::string>() << " "
           << (held ? k["reports"][0]["relation"].get<std::string>() : std::string("vs")) << " "
           << k["other"].get<std::string>() << " on " << k["workload"].get<std::string>() << ":";
      const char* sep = " ";
      for (const json& r : k["reports"]) {
        line << sep;
        if (!held)
          line << (r["clear"].get<bool>() ? r["relation"].get<std::string>()
                                          : "unclear (" + r["why"].get<std::string>() + ")")
               << " ";
        line << table::num(r["ratio"], "%.2fx") << " [" << table::num(r["ci"][0], "%.2f") << ", "
             << table::num(r["ci"][1], "%.2f") << "] (" << r["report"].get<std::string>() << ", "
             << r["winner_workers"] << "w vs " << r["other_workers"] << "w)";
        sep = ", ";
      }
      item(line.str());
    }
    out << "\n";
    const auto level =
        static_cast<int>(std::lround((1 - cmp["options"]["alpha"].get<double>()) * 100));
    item(std::to_string(concl.size()) + " conclusion(s): " + std::to_string(holds) + " hold, " +
         std::to_string(differs) + " differ, " + std::to_string(concl.size() - holds - differs) +
         " within noise (ratio of medians with " + "its " + std::to_string(level) +
         "% bootstrap interval over the repetitions; minimum " + "effect " +
         table::num(cmp["options"]["min_effect_pct"], "%g") + "%)");
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
                {"min_effect_pct", opt.min_effect_pct},
                {"fail_on_regression_pct",
                 opt.fail_on_regression_pct ? json(*opt.fail_on_regression_pct) : json(nullptr)},
                {"fail_on_broken", opt.fail_on_broken || opt.fail_on_regression_pct}}}};
  if (ix.empty()) return out;
  out["base"] = {
      {"path", ix[0].path}, {"label", ix[0].label}, {"machine", machine_line(*ix[0].report)}};
  json comparisons = json::array();
  for (size_t i = 1; i < ix.size(); ++i) comparisons.push_back(compare_pair(ix[0], ix[i], opt));
  out["comparisons"] = comparisons;
  out["conclusions"] = conclusions(ix, opt);
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
  return cmp["options"].value("fail_on_broken", false) && cmp.value("gating_cells", size_t{0}) > 0
             ? 1
             : 0;
}

}  // namespace concbench
