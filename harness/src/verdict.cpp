#include "concbench/verdict.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "concbench/stats.hpp"
#include "table.hpp"

namespace concbench {
namespace {

using nlohmann::json;

// A number from a JSON field that may be absent, null or of another type.
std::optional<double> number_at(const json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string text_of(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string params_text(const json& params) {
  std::string s;
  for (const auto& [k, v] : params.items()) s += (s.empty() ? "" : ",") + k + "=" + text_of(v);
  return s;
}

std::optional<double> as_number(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  size_t used = 0;
  try {
    const double d = std::stod(s, &used);
    if (used == s.size() && std::isfinite(d)) return d;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

double median_of(std::vector<double> v) {
  return summarize(v).median;
}

// Reports written before cells carried serial_baseline: cpython.* models divide by
// cpython.serial, everything else by serial (as compare reads them).
std::string baseline_of(const json& cell) {
  if (cell.contains("serial_baseline") && cell["serial_baseline"].is_string())
    return cell["serial_baseline"].get<std::string>();
  return cell["model"].get<std::string>().rfind("cpython.", 0) == 0 ? "cpython.serial" : "serial";
}

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

std::string workers_text(int w, const char* unit = "worker") {
  return std::to_string(w) + " " + unit + (w == 1 ? "" : "s");
}

std::string bytes_text(double b) {
  if (b < 1024) return table::num(b, "%.0f B");
  if (b < 1024.0 * 1024) return table::num(b / 1024, "%.3g KiB");
  return table::num(b / (1024.0 * 1024), "%.3g MiB");
}

// "1.90x [1.85, 1.95]", or with `over`: "1.90x over serial [1.85, 1.95]".
std::string ratio_text(double ratio, double lo, double hi, const std::string& over = "") {
  return table::num(ratio, "%.2fx") + (over.empty() ? "" : " over " + over) + " [" +
         table::num(lo, "%.2f") + ", " + table::num(hi, "%.2f") + "]";
}

// A member object, or an empty one where it is absent (operator[] on a const json must not
// meet a missing key).
const json& object_at(const json& obj, const char* key) {
  static const json empty = json::object();
  if (!obj.is_object()) return empty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : empty;
}

bool contains(const std::string& s, const char* part) {
  return s.find(part) != std::string::npos;
}

// One cell, read once: its verified repetitions and what they say.
struct Cell {
  const json* j = nullptr;
  std::string model, status, error;
  int workers = 0;
  std::vector<double> times;  // wall_ns / tasks of each verified repetition
  double time = 0;            // their median
  std::string label;          // the model, with its own parameters where they tell cells apart

  bool usable() const { return status == "ok" && !times.empty() && time > 0; }

  // The median over verified repetitions of f(repetition), skipping those where f has nothing.
  std::optional<double> median(const std::function<std::optional<double>(const json&)>& f) const {
    std::vector<double> v;
    for (const json& r : (*j)["repetitions"]) {
      if (!r.value("verified", false)) continue;
      if (auto x = f(r)) v.push_back(*x);
    }
    if (v.empty()) return std::nullopt;
    return median_of(v);
  }
  const json& model_metrics_of(const json& rep) const { return object_at(rep, "model_metrics"); }
};

Cell read_cell(const json& c) {
  Cell cell;
  cell.j = &c;
  cell.model = c["model"].get<std::string>();
  cell.label = cell.model;
  cell.workers = c["workers"].get<int>();
  cell.status = c["status"].get<std::string>();
  if (c.contains("error") && c["error"].is_string()) cell.error = c["error"].get<std::string>();
  for (const json& r : c["repetitions"]) {
    const auto tasks = number_at(r, "tasks");
    const auto wall = number_at(r, "wall_ns");
    if (!r.value("verified", false) || !tasks || !wall || *tasks <= 0) continue;
    cell.times.push_back(*wall / *tasks);
  }
  if (!cell.times.empty()) cell.time = median_of(cell.times);
  return cell;
}

bool is_gil_model(const Cell& c) {
  if (contains(c.model, "gil") || contains(c.model, "threading")) return true;
  for (const json& r : (*c.j)["repetitions"])
    if (c.model_metrics_of(r).contains("gil_wait_ns")) return true;
  return false;
}

bool is_process_model(const Cell& c) {
  return contains(c.model, "process");
}

bool is_async_model(const Cell& c) {
  return c.model.rfind("async", 0) == 0 || contains(c.model, "asyncio");
}

// A reason: its clauses, and whether it says something a reader of a losing model should see
// (time lost to the GIL, to serialization, or to stalls of an event loop).
struct Reason {
  std::vector<std::string> clauses;
  bool telling = false;
  std::string text() const {
    std::string s;
    for (const std::string& c : clauses) s += (s.empty() ? "" : ", ") + c;
    return s;
  }
};

Reason reason_of(const Cell& c, const json& workload_params, bool winner) {
  Reason r;
  bool specific = false;  // a model-specific clause was drawn
  const bool gil = is_gil_model(c), process = is_process_model(c), async = is_async_model(c);

  // Parallelism: CPU time over wall time. Where the CPU time leaves out child processes, the
  // figure would undercount a process pool: no clause then.
  const auto parallelism = c.median([&](const json& rep) -> std::optional<double> {
    const auto user = number_at(rep, "cpu_user_ns"), sys = number_at(rep, "cpu_sys_ns");
    const auto wall = number_at(rep, "wall_ns");
    if (!user || !wall || *wall <= 0) return std::nullopt;
    if (process && rep.contains("cpu_covers_children") && !rep.value("cpu_covers_children", true))
      return std::nullopt;
    return (*user + sys.value_or(0)) / *wall;
  });

  // Where the workers' time went (the cell's attribution, attribution.hpp), where it has one.
  const json& attr = object_at(*c.j, "attribution");
  const json& shares = object_at(object_at(attr, "total"), "share");
  const std::string dominant = attr.contains("dominant") && attr["dominant"].is_string()
                                   ? attr["dominant"].get<std::string>()
                                   : std::string();

  // GIL wait as a share of the workers' time: the attribution's, else the model's own total.
  std::optional<double> gil_wait;
  if (const auto a = number_at(shares, "gil_wait"); a && (gil || *a > 0)) gil_wait = a;
  if (gil && !gil_wait) {
    gil_wait = c.median([&](const json& rep) -> std::optional<double> {
      const json& mm = c.model_metrics_of(rep);
      auto it = mm.find("gil_wait_ns");
      if (it == mm.end()) return std::nullopt;
      std::optional<double> total =
          it->is_number() ? std::optional<double>(it->get<double>()) : number_at(*it, "total");
      const auto wall = number_at(rep, "wall_ns");
      if (!total || !wall || *wall <= 0 || c.workers <= 0) return std::nullopt;
      return *total / (c.workers * *wall);
    });
  }
  // A wait under half a percent says nothing (and one inferred for a real CPython, which cannot
  // time its GIL, can miss a GIL that is never let go): the parallelism clause speaks then.
  if (gil_wait && *gil_wait < 0.005) gil_wait.reset();
  if (gil_wait) {
    r.clauses.push_back("GIL wait " + table::num(*gil_wait * 100, "%.0f") + "% of worker time");
    r.telling = r.telling || *gil_wait >= 0.1;
    specific = true;
  }
  // The dominant part, where it is not computing (which needs no explaining) nor the GIL wait
  // already said.
  if (!dominant.empty() && dominant != "cpu" && dominant != "gil_wait") {
    static const std::map<std::string, std::string> said = {
        {"runqueue", "waiting for a CPU"},  {"io_wait", "in IO waits"},
        {"serialize", "serializing"},       {"deserialize", "deserializing"},
        {"idle", "idle, waiting for work"}, {"unattributed", "unattributed"}};
    const auto it = said.find(dominant);
    const auto sh = number_at(attr, "dominant_share");
    if (it != said.end() && sh) {
      r.clauses.push_back("most worker time " + it->second + " (" + table::num(*sh * 100, "%.0f") +
                          "%)");
      r.telling = r.telling || (dominant != "io_wait" && *sh >= 0.25);
      specific = true;
    }
  }
  if (parallelism) {
    const char* unit = gil ? "thread" : "worker";
    std::string clause = "CPU " + table::num(*parallelism, "%.2f") + " of " +
                         workers_text(c.workers, unit) + " busy";
    if (gil && !gil_wait && c.workers >= 2 && *parallelism < 1.3) {
      clause += ": the GIL lets one thread run Python at a time";
      r.telling = true;
      specific = true;
    }
    r.clauses.push_back(clause);
  }

  if (process) {
    const auto ser = c.median([&](const json& rep) -> std::optional<double> {
      const json& mm = c.model_metrics_of(rep);
      const auto enc = number_at(mm, "serialize_ns"), dec = number_at(mm, "deserialize_ns");
      const auto exec = number_at(mm, "worker_exec_ns");
      if (!enc && !dec) return std::nullopt;
      const double s = enc.value_or(0) + dec.value_or(0);
      if (exec && s + *exec > 0) return s / (s + *exec);
      return std::nullopt;
    });
    // The bytes per task: the workload's payload, else what the model measured.
    std::string bytes;
    double payload = 0;
    if (workload_params.is_object() && workload_params.contains("payload_bytes"))
      payload = as_number(workload_params["payload_bytes"]).value_or(0);
    const auto metric = [&](const char* key) {
      return c.median([&](const json& rep) { return number_at(c.model_metrics_of(rep), key); });
    };
    const auto pin = metric("pickled_input_bytes"), pout = metric("pickled_result_bytes");
    if (payload > 0)
      bytes = bytes_text(payload) + " payload";
    else if (pin || pout)
      bytes =
          bytes_text(pin.value_or(0)) + " in, " + bytes_text(pout.value_or(0)) + " out per task";
    else if (const auto bpt = metric("bytes_per_task"))
      bytes = bytes_text(*bpt) + " per task";
    if (ser) {
      r.clauses.push_back("serialization " + table::num(*ser * 100, "%.0f") + "% of task time" +
                          (bytes.empty() ? "" : " at " + bytes));
      r.telling = r.telling || *ser >= 0.1;
      specific = true;
    } else if (pin || pout) {
      r.clauses.push_back("pickled " + bytes_text(pin.value_or(0)) + " in, " +
                          bytes_text(pout.value_or(0)) + " out per task");
      r.telling = r.telling || pin.value_or(0) + pout.value_or(0) >= 16 * 1024;
      specific = true;
    }
  }

  // Overlap: the workload's own figure of how many sleeps (or tasks) were in flight at once.
  if (async || winner) {
    std::optional<double> overlap;
    const char* what = "sleeps";
    overlap = c.median(
        [](const json& rep) { return number_at(object_at(rep, "metrics"), "sleep_overlap"); });
    if (!overlap) {
      overlap =
          c.median([](const json& rep) { return number_at(object_at(rep, "metrics"), "overlap"); });
      what = "tasks";
    }
    if (overlap) {
      const auto threads = c.median(
          [&](const json& rep) { return number_at(c.model_metrics_of(rep), "loop_threads"); });
      const int n = threads ? static_cast<int>(std::lround(*threads)) : c.workers;
      const std::string where =
          async ? (n == 1 ? "in one thread" : "in " + std::to_string(n) + " threads")
                : "across " + workers_text(c.workers);
      r.clauses.push_back(table::num(*overlap, "%.1f") + " " + what + " overlapped " + where);
      specific = specific || async;
    }
  }
  if (async) {
    const auto lag = c.median([&](const json& rep) -> std::optional<double> {
      const json& mm = c.model_metrics_of(rep);
      auto it = mm.find("loop_lag");
      if (it == mm.end() || !it->is_object()) return std::nullopt;
      if (auto n = number_at(*it, "samples"); n && *n <= 0) return std::nullopt;
      return number_at(*it, "p99_ns");
    });
    if (lag && *lag >= 1e6) {
      r.clauses.push_back("stalls: loop lag p99 " + table::time_ns(*lag));
      r.telling = true;
      specific = true;
    }
  }

  // The fallback, for the winner only: a loser's time is in its ratio already.
  if (!specific && (winner || r.clauses.empty())) {
    std::string clause = table::time_ns(c.time) + " per task";
    const auto cs = c.median([](const json& rep) -> std::optional<double> {
      const auto n = number_at(object_at(rep, "counters"), "context_switches");
      const auto tasks = number_at(rep, "tasks");
      if (!n || !tasks || *tasks <= 0) return std::nullopt;
      return *n / *tasks;
    });
    if (cs) clause += ", " + table::num(*cs, "%.2g") + " context switches per task";
    r.clauses.push_back(clause);
  }
  return r;
}

// The workload parameters a cell ran with: workload_params, or for older reports the
// parameters every cell of its workload carries (a model's own appear in its cells only).
json group_params(const json& cell, const std::set<std::string>& common, bool weak) {
  json p = json::object();
  if (cell.contains("workload_params") && cell["workload_params"].is_object()) {
    p = cell["workload_params"];
  } else if (cell.contains("params") && cell["params"].is_object()) {
    for (const auto& [k, v] : cell["params"].items())
      if (common.count(k)) p[k] = v;
  }
  if (weak) p.erase("tasks");
  return p;
}

struct Group {
  std::string workload;
  json params;  // its workload parameters
  std::vector<Cell> cells;
};

struct Margin {
  double ratio = 0, low = 0, high = 0;
  size_t min_n = 0;
  json to_json() const { return {{"ratio", ratio}, {"ci95", {low, high}}}; }
};

Margin margin(const Cell& slower, const Cell& faster, const VerdictOptions& opt) {
  const RatioInterval ci = bootstrap_median_ratio({slower.times}, {faster.times}, 1 - opt.alpha,
                                                  kBootstrapResamples, kBootstrapSeed);
  return {ci.ratio, ci.low, ci.high, ci.min_n};
}

// Why a margin is not clear, or null when it is.
json unclear_why(const Margin& m, const VerdictOptions& opt) {
  const double tie = 1 + opt.min_effect_pct / 200;
  if (m.min_n < 2) return "too few repetitions";
  if (m.low <= 1) return "interval includes 1";
  if (m.high <= tie) return "within the tie zone";
  return nullptr;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return s;
}

// The verdict of one group, without its workload prefix in "body".
json judge(const Group& g, const VerdictOptions& opt) {
  // Labels: a model's own parameters where its cells in the group differ in them.
  std::map<std::string, std::vector<const Cell*>> by_model;
  for (const Cell& c : g.cells) by_model[c.model].push_back(&c);

  std::vector<Cell> cells = g.cells;
  for (Cell& c : cells) {
    const auto& same = by_model[c.model];
    std::set<std::string> varying;
    for (const Cell* o : same)
      for (const auto& [k, v] : (*o->j)["params"].items())
        if (!(*c.j)["params"].contains(k) || (*c.j)["params"][k] != v) varying.insert(k);
    json own = json::object();
    for (const std::string& k : varying)
      if ((*c.j)["params"].contains(k)) own[k] = (*c.j)["params"][k];
    if (!own.empty()) c.label += " {" + params_text(own) + "}";
  }

  // Each model's best usable cell, fastest first.
  std::map<std::string, const Cell*> best;
  for (const Cell& c : cells)
    if (c.usable() && (!best.count(c.model) || c.time < best[c.model]->time)) best[c.model] = &c;
  std::vector<const Cell*> ranked;
  for (const auto& [m, c] : best) ranked.push_back(c);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Cell* a, const Cell* b) { return a->time < b->time; });

  // Cells that did not finish or did not verify: listed, never ranked.
  std::vector<const Cell*> failed;
  for (const Cell& c : cells)
    if (!c.usable()) failed.push_back(&c);
  auto failed_text = [&](const Cell& c) {
    std::string s = c.label;
    if (by_model[c.model].size() > 1) s += " at " + workers_text(c.workers);
    const std::string status = c.status == "ok" ? "no verified repetitions" : c.status;
    s += ": " + status;
    if (!c.error.empty()) s += ": " + first_line(c.error);
    return s;
  };

  json out = {
      {"workload", g.workload},        {"winner", nullptr},    {"workers", nullptr},
      {"time_per_task_ns", nullptr},   {"runner_up", nullptr}, {"margin_over_runner_up", nullptr},
      {"margin_over_serial", nullptr}, {"clear", false},       {"unclear_why", nullptr},
      {"tied", json::array()},         {"reason", ""}};
  json others = json::array();
  std::vector<std::string> failures;
  for (const Cell* c : failed) {
    others.push_back({{"model", c->model},
                      {"workers", c->workers},
                      {"status", c->status == "ok" ? "not verified" : c->status},
                      {"error", c->error.empty() ? json(nullptr) : json(first_line(c->error))}});
    failures.push_back(failed_text(*c));
  }
  auto with_failures = [&](std::string body) {
    for (const std::string& f : failures) body += "; " + f;
    return body;
  };

  if (ranked.empty()) {
    out["others"] = others;
    out["unclear_why"] = "no cell finished and verified";
    std::string body = "no model finished and verified";
    for (size_t i = 0; i < failures.size(); ++i) body += (i ? "; " : ": ") + failures[i];
    out["body"] = body;
    return out;
  }

  const Cell& w = *ranked[0];
  const Reason wr = reason_of(w, g.params, true);
  out["winner"] = w.model;
  out["workers"] = w.workers;
  out["time_per_task_ns"] = w.time;
  out["reason"] = wr.text();

  // Margin over the serial baseline, at one worker, in this group.
  std::string serial_text;
  const std::string base_model = baseline_of(*w.j);
  const Cell* base = nullptr;
  for (const Cell& c : cells)
    if (c.model == base_model && c.workers == 1 && c.usable() && (!base || c.time < base->time))
      base = &c;
  if (base && base != &w) {
    const Margin m = margin(*base, w, opt);
    json mj = m.to_json();
    mj["baseline"] = base_model;
    out["margin_over_serial"] = mj;
    serial_text = ratio_text(m.ratio, m.low, m.high, base_model);
  }

  // Every other model against the winner.
  std::vector<std::string> tied = {w.label};
  std::vector<std::string> tied_margins, loser_segments;
  json tied_models = json::array({w.model});
  for (size_t i = 1; i < ranked.size(); ++i) {
    const Cell& o = *ranked[i];
    const Margin m = margin(o, w, opt);
    const Reason orr = reason_of(o, g.params, false);
    others.push_back({{"model", o.model},
                      {"workers", o.workers},
                      {"time_per_task_ns", o.time},
                      {"ratio", m.ratio},
                      {"ci95", {m.low, m.high}},
                      {"reason", orr.text()}});
    if (!unclear_why(m, opt).is_null()) {
      tied.push_back(o.label);
      tied_models.push_back(o.model);
      tied_margins.push_back(
          o.label + " " + ratio_text(m.ratio, m.low, m.high) +
          (unclear_why(m, opt) == "within the tie zone"
               ? " within \u00b1" + table::num(opt.min_effect_pct / 2, "%g") + "%"
               : ""));
    }
    // A GIL-bound model is at its best on one thread; what its widest cell shows (its own
    // speedup and why) is the reason it lost, so that is the segment the reader sees.
    const Cell* widest = nullptr;
    if (is_gil_model(o))
      for (const Cell& c : cells)
        if (c.model == o.model && c.label == o.label && c.usable() && c.workers > o.workers &&
            (!widest || c.workers > widest->workers))
          widest = &c;
    if (widest) {
      const Reason wide = reason_of(*widest, g.params, false);
      const Cell* one = nullptr;
      for (const Cell& c : cells)
        if (c.model == o.model && c.label == o.label && c.usable() && c.workers == 1) one = &c;
      std::string seg = o.label + " at " + workers_text(widest->workers, "thread") + ": ";
      if (one) {
        const Margin sm = margin(*one, *widest, opt);
        seg += ratio_text(sm.ratio, sm.low, sm.high) + " of 1 thread, ";
      }
      loser_segments.push_back(seg + wide.text());
    } else if (i == 1 || orr.telling) {
      loser_segments.push_back(o.label + " at " + workers_text(o.workers) + ": " + orr.text());
    }
    if (i == 1) {
      out["runner_up"] = o.model;
      out["margin_over_runner_up"] = m.to_json();
      out["unclear_why"] = unclear_why(m, opt);
      out["clear"] = out["unclear_why"].is_null();
    }
  }
  out["others"] = others;

  std::string body;
  const std::string at = " at " + workers_text(w.workers);
  if (ranked.size() == 1) {
    out["unclear_why"] = "no other model finished and verified";
    body = "only " + w.label + " finished and verified (" + workers_text(w.workers) + ")";
    if (!serial_text.empty()) body += ", " + serial_text;
  } else if (out["clear"].get<bool>()) {
    const json& mr = out["margin_over_runner_up"];
    body = w.label + at + " wins";
    if (!serial_text.empty() && ranked[1] != base) body += ", " + serial_text;
    body += ", " + ratio_text(mr["ratio"], mr["ci95"][0], mr["ci95"][1], ranked[1]->label);
  } else {
    out["tied"] = tied_models;
    body = "no clear winner between " + join_names(tied);
    std::string margins;
    for (const std::string& t : tied_margins) margins += (margins.empty() ? "" : ", ") + t;
    if (tied.size() == 2) margins = margins.substr(ranked[1]->label.size() + 1);
    body += " (" + margins;
    if (out["unclear_why"] == "too few repetitions") body += ", too few repetitions";
    body += "); " + w.label + at + " fastest";
    if (!serial_text.empty()) body += ", " + serial_text;
  }
  body += ": " + wr.text();
  for (const std::string& s : loser_segments) body += "; " + s;
  out["body"] = with_failures(body);
  return out;
}

std::string prefix_of(const std::string& workload, const json& params) {
  return params.empty() ? workload : workload + " {" + params_text(params) + "}";
}

// The sweep over the groups of `entries` (indexes into the workload entries), all of one
// workload, differing in `keys` only.
json sweep_of(const json& entries, const std::vector<size_t>& members,
              const std::vector<std::string>& keys, const json& fixed) {
  const std::string workload = entries[members[0]]["workload"];
  // Order the points by the swept values: numerically where every value of a key is a number.
  std::vector<bool> numeric(keys.size(), true);
  for (size_t k = 0; k < keys.size(); ++k)
    for (size_t i : members)
      numeric[k] = numeric[k] && as_number(entries[i]["point"].value(keys[k], json())).has_value();
  std::vector<size_t> order = members;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    for (size_t k = 0; k < keys.size(); ++k) {
      const json &va = entries[a]["point"][keys[k]], &vb = entries[b]["point"][keys[k]];
      if (numeric[k]) {
        const double x = *as_number(va), y = *as_number(vb);
        if (x != y) return x < y;
      } else if (text_of(va) != text_of(vb)) {
        return text_of(va) < text_of(vb);
      }
    }
    return false;
  });

  // A point's outcome as a reader should see it: the winner, or who ties.
  auto outcome = [&](const json& e) -> std::string {
    if (e["winner"].is_null()) return "nothing finished";
    if (e["clear"].get<bool>() || e["tied"].empty()) return e["winner"].get<std::string>();
    std::vector<std::string> names;
    for (const json& t : e["tied"]) names.push_back(t.get<std::string>());
    return "no clear winner (" + join_names(names) + ")";
  };
  json points = json::array();
  std::vector<std::string> point_texts;
  for (size_t i : order) {
    const json& e = entries[i];
    points.push_back({{"params", e["point"]},
                      {"winner", e["winner"]},
                      {"workers", e["workers"]},
                      {"clear", e["clear"]},
                      {"outcome", outcome(e)}});
    point_texts.push_back(params_text(e["point"]) + ": " + e["body"].get<std::string>());
  }

  json changes = json::array();
  std::string summary;
  if (keys.size() == 1) {
    const std::string& key = keys[0];
    // Runs of points with the same outcome.
    struct Run {
      std::string outcome, first, last;
    };
    std::vector<Run> runs;
    for (const json& p : points) {
      const std::string v = text_of(p["params"][key]), o = p["outcome"];
      if (!runs.empty() && runs.back().outcome == o)
        runs.back().last = v;
      else
        runs.push_back({o, v, v});
    }
    for (size_t r = 1; r < runs.size(); ++r)
      changes.push_back({{"key", key},
                         {"from", runs[r - 1].outcome},
                         {"to", runs[r].outcome},
                         {"after", runs[r - 1].last},
                         {"at", runs[r].first}});
    auto wins = [](const std::string& o) {
      return o.rfind("no clear winner", 0) == 0 || o == "nothing finished" ? o : o + " wins";
    };
    if (runs.size() == 1) {
      std::string values;
      for (const json& p : points)
        values += (values.empty() ? "" : ", ") + text_of(p["params"][key]);
      summary = wins(runs[0].outcome) + " at every " + key + " (" + values + ")";
    } else {
      for (size_t r = 0; r < runs.size(); ++r) {
        const Run& run = runs[r];
        std::string s;
        if (r == 0)
          s = wins(run.outcome) + " at " + key + " \u2264 " + run.last;
        else if (r + 1 == runs.size())
          s = run.outcome + " from " + run.first;
        else
          s = run.outcome + (run.first == run.last ? " at " + run.first
                                                   : " from " + run.first + " to " + run.last);
        summary += (r ? ", " : "") + s;
      }
    }
  } else {
    std::string k;
    for (const std::string& s : keys) k += (k.empty() ? "" : ",") + s;
    summary = "winners by " + k + ": ";
    for (size_t i = 0; i < points.size(); ++i)
      summary += (i ? "; " : "") + params_text(points[i]["params"]) + " " +
                 points[i]["outcome"].get<std::string>();
  }
  std::string line = prefix_of(workload, fixed) + ": " + summary;
  for (const std::string& t : point_texts) line += " | " + t;
  return {{"workload", workload}, {"keys", keys},       {"fixed", fixed}, {"points", points},
          {"changes", changes},   {"summary", summary}, {"line", line}};
}

// Keys the user swept: config.params values with commas (or lists).
std::set<std::string> swept_keys(const json& report) {
  std::set<std::string> keys;
  const json& cfg = report.value("config", json::object());
  if (!cfg.is_object() || !cfg.contains("params") || !cfg["params"].is_object()) return keys;
  for (const auto& [k, v] : cfg["params"].items())
    if ((v.is_string() && v.get<std::string>().find(',') != std::string::npos) ||
        (v.is_array() && v.size() > 1))
      keys.insert(k);
  return keys;
}

}  // namespace

json verdict(const json& report, const VerdictOptions& opt) {
  const json& cfg = report.value("config", json::object());
  const bool weak = cfg.is_object() && cfg.value("scaling", std::string()) == "weak";

  // Workloads in the order the report has them; for reports without workload_params, the
  // parameter keys every cell of a workload carries.
  std::vector<std::string> order;
  std::map<std::string, std::set<std::string>> common;
  for (const json& c : report["results"]) {
    const std::string w = c["workload"];
    std::set<std::string> keys;
    if (c.contains("params") && c["params"].is_object())
      for (const auto& [k, v] : c["params"].items()) keys.insert(k);
    if (!common.count(w)) {
      order.push_back(w);
      common[w] = keys;
    } else {
      std::set<std::string> both;
      std::set_intersection(common[w].begin(), common[w].end(), keys.begin(), keys.end(),
                            std::inserter(both, both.begin()));
      common[w] = both;
    }
  }
  std::vector<Group> groups;
  for (const std::string& w : order) {
    for (const json& c : report["results"]) {
      if (c["workload"] != w) continue;
      const json p = group_params(c, common[w], weak);
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const Group& g) { return g.workload == w && g.params == p; });
      if (it == groups.end()) {
        groups.push_back({w, p, {}});
        it = groups.end() - 1;
      }
      it->cells.push_back(read_cell(c));
    }
  }

  const std::set<std::string> swept = swept_keys(report);
  json entries = json::array();
  for (const Group& g : groups) {
    json e = judge(g, opt);
    e["params"] = json::object();
    e["point"] = json::object();
    e["sweep"] = nullptr;
    entries.push_back(std::move(e));
  }
  // Per workload: the parameters that tell its groups apart, and the sweeps among them.
  json crossovers = json::array();
  for (const std::string& w : order) {
    std::vector<size_t> members;
    for (size_t i = 0; i < groups.size(); ++i)
      if (groups[i].workload == w) members.push_back(i);
    if (members.size() < 2) continue;
    std::set<std::string> all_keys, differ;
    for (size_t i : members)
      for (const auto& [k, v] : groups[i].params.items()) all_keys.insert(k);
    for (const std::string& k : all_keys)
      for (size_t i : members)
        if (groups[i].params.value(k, json()) != groups[members[0]].params.value(k, json()))
          differ.insert(k);
    std::vector<std::string> sweep_keys;
    for (const std::string& k : differ)
      if (swept.count(k)) sweep_keys.push_back(k);
    // Groups that agree on every distinguishing key but the swept ones form one sweep.
    std::map<std::string, std::vector<size_t>> by_fixed;
    std::vector<std::string> fixed_order;
    for (size_t i : members) {
      json d = json::object(), fixed = json::object(), point = json::object();
      for (const std::string& k : differ) {
        const json v = groups[i].params.value(k, json());
        d[k] = v;
        (swept.count(k) ? point : fixed)[k] = v;
      }
      entries[i]["params"] = d;
      entries[i]["point"] = point;
      entries[i]["fixed"] = fixed;
      const std::string fk = fixed.dump();
      if (!by_fixed.count(fk)) fixed_order.push_back(fk);
      by_fixed[fk].push_back(i);
    }
    if (sweep_keys.empty()) continue;
    for (const std::string& fk : fixed_order) {
      const auto& part = by_fixed[fk];
      if (part.size() < 2) continue;
      for (size_t i : part) entries[i]["sweep"] = crossovers.size();
      crossovers.push_back(sweep_of(entries, part, sweep_keys, json::parse(fk)));
    }
  }
  for (json& e : entries) {
    e["line"] = prefix_of(e["workload"], e["params"]) + ": " + e["body"].get<std::string>();
    e.erase("body");
    e.erase("point");
    e.erase("fixed");
  }
  return {{"verdict_version", 1},
          {"options", {{"alpha", opt.alpha}, {"min_effect_pct", opt.min_effect_pct}}},
          {"workloads", entries},
          {"crossovers", crossovers}};
}

std::string format_verdict(const json& v, VerdictFormat format) {
  if (format == VerdictFormat::json) return v.dump(2) + "\n";
  std::ostringstream out;
  if (format == VerdictFormat::text) {
    std::set<size_t> printed;
    for (const json& e : v["workloads"]) {
      if (e["sweep"].is_null()) {
        out << e["line"].get<std::string>() << "\n";
      } else if (printed.insert(e["sweep"].get<size_t>()).second) {
        out << v["crossovers"][e["sweep"].get<size_t>()]["line"].get<std::string>() << "\n";
      }
    }
    return out.str();
  }
  auto cell = [](std::string s) {  // a Markdown table cell: pipes escaped
    std::string r;
    for (char ch : s) r += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return r;
  };
  auto margin = [](const json& m) {
    return m.is_null() ? std::string("-") : ratio_text(m["ratio"], m["ci95"][0], m["ci95"][1]);
  };
  std::vector<std::vector<std::string>> rows;
  for (const json& e : v["workloads"]) {
    std::string winner = "-", why;
    if (!e["winner"].is_null()) {
      if (e["clear"].get<bool>() || e["tied"].empty()) {
        winner = e["winner"].get<std::string>();
      } else {
        std::vector<std::string> names;
        for (const json& t : e["tied"]) names.push_back(t.get<std::string>());
        winner = "no clear winner: " + join_names(names);
      }
    }
    std::string others;
    for (const json& o : e["others"]) {
      std::string s = o["model"].get<std::string>() + " (" + o["workers"].dump() + "w): ";
      if (o.contains("status"))
        s += o["status"].get<std::string>() +
             (o["error"].is_null() ? "" : ": " + o["error"].get<std::string>());
      else
        s += table::num(o["ratio"], "%.2fx") + ", " + o["reason"].get<std::string>();
      others += (others.empty() ? "" : "; ") + s;
    }
    rows.push_back({cell(e["workload"]), cell(params_text(e["params"])), cell(winner),
                    e["workers"].is_null() ? "-" : e["workers"].dump(),
                    cell(e["runner_up"].is_null() ? "-" : e["runner_up"].get<std::string>()),
                    margin(e["margin_over_runner_up"]), margin(e["margin_over_serial"]),
                    cell(e["reason"]), cell(others)});
  }
  using table::Align;
  out << table::render({"workload", "params", "winner", "workers", "runner-up", "over runner-up",
                        "over serial", "reason", "others"},
                       rows,
                       {Align::left, Align::left, Align::left, Align::right, Align::left,
                        Align::right, Align::right, Align::left, Align::left},
                       true);
  if (!v["crossovers"].empty()) {
    out << "\n";
    for (const json& c : v["crossovers"])
      out << "- " << cell(prefix_of(c["workload"], c["fixed"])) << ": "
          << c["summary"].get<std::string>() << "\n";
  }
  return out.str();
}

}  // namespace concbench
