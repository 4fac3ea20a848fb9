#include "concbench/config.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "concbench/foreign_python.hpp"
#include "concbench/params.hpp"
#include "concbench/plugin.hpp"
#include "concbench/profile.hpp"

namespace concbench {
namespace {

using nlohmann::json;

const std::set<std::string>& known_keys() {
  // clang-format off
  static const std::set<std::string> k = {
      "suite",   "workloads",  "models",  "workers",        "repetitions",        "min_time",
      "timeout", "params",     "scaling", "checkpoint",     "switch_interval_us", "pin",
      "seed",    "interleave", "plugins", "workload_files", "pythons",            "trace",
      "trace_cap", "sched_trace", "gil_policy"};
  // clang-format on
  return k;
}

std::string flag(const std::string& key) {
  std::string f = "--" + key;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

// A scalar as the text the command line would have given.
std::string scalar_text(const json& v, const std::string& what) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) {
    std::string s = json(v.get<double>()).dump();
    return s;
  }
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  throw UsageError(what + ": expected a string or a number, got " + std::string(v.type_name()));
}

std::vector<std::string> list_of(const json& v, const std::string& what) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const json& e : v) {
      std::string s = scalar_text(e, what);
      if (s.empty()) throw UsageError(what + ": empty item");
      out.push_back(std::move(s));
    }
    if (out.empty()) throw UsageError(what + ": empty list");
    return out;
  }
  const std::string s = scalar_text(v, what);
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) throw UsageError(what + ": empty item in '" + s + "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

RunConfig config_from_request(const json& req) {
  if (!req.is_object()) throw UsageError("config: expected an object of settings");
  for (const auto& [k, _] : req.items())
    if (!known_keys().count(k))
      throw UsageError("config: unknown key '" + k +
                       "' (suite, workloads, models, workers, repetitions, min_time, timeout, "
                       "params, scaling, checkpoint, gil_policy, switch_interval_us, pin, seed, "
                       "interleave, plugins, workload_files, pythons, trace, trace_cap, "
                       "sched_trace)");
  const auto has = [&](const char* k) { return req.contains(k) && !req.at(k).is_null(); };
  // First: a plugin's workloads must exist before names are checked.
  if (has("plugins"))
    for (const std::string& path : list_of(req.at("plugins"), "--plugin")) load_plugin(path);
  // Each interpreter's py:<label>.* models must exist before model names are checked. A path is
  // never split at commas.
  if (has("pythons")) {
    const json& v = req.at("pythons");
    std::vector<std::string> paths;
    if (v.is_string()) {
      paths.push_back(v.get<std::string>());
    } else if (v.is_array() && !v.empty()) {
      for (const json& e : v) {
        if (!e.is_string()) throw UsageError("--python: expected a path (a string)");
        paths.push_back(e.get<std::string>());
      }
    } else {
      throw UsageError("--python: expected a path or a list of paths");
    }
    for (const std::string& path : paths) {
      if (path.empty()) throw UsageError("--python: empty path");
      register_foreign_python(path);
    }
  }

  // Profiles are registered before the suite is built or `workloads` resolved, so both may name
  // them. A path is never split at commas: a file name may hold one.
  std::vector<std::string> profiles;
  if (has("workload_files")) {
    const json& v = req.at("workload_files");
    std::vector<std::string> paths;
    if (v.is_string()) {
      paths.push_back(v.get<std::string>());
    } else if (v.is_array() && !v.empty()) {
      for (const json& e : v) {
        if (!e.is_string()) throw UsageError("--workload-file: expected a path (a string)");
        paths.push_back(e.get<std::string>());
      }
    } else {
      throw UsageError("--workload-file: expected a path or a list of paths");
    }
    for (const std::string& path : paths) {
      if (path.empty()) throw UsageError("--workload-file: empty path");
      std::string name(load_profile_file(path).name());
      if (std::find(profiles.begin(), profiles.end(), name) == profiles.end())
        profiles.push_back(std::move(name));
    }
  }

  RunConfig cfg = suite_config(has("suite") ? scalar_text(req.at("suite"), "--suite") : "quick");
  if (has("workloads")) {
    cfg.workloads = list_of(req.at("workloads"), "--workloads");
  } else if (!profiles.empty()) {
    // Given only files, the user wants their workloads, not the suite's; each still repeats to
    // the suite's min-time, as a suite's workloads do.
    cfg.workloads = profiles;
  }
  if (has("models")) cfg.models = list_of(req.at("models"), "--models");
  if (has("workers")) {
    cfg.workers.clear();
    for (const auto& w : list_of(req.at("workers"), "--workers")) {
      const int64_t v = parse_int(w, "--workers");
      if (v < 1 || v > 4096) throw UsageError("--workers: " + w + " is outside [1, 4096]");
      cfg.workers.push_back(static_cast<int>(v));
    }
  }
  if (has("repetitions")) {
    const std::string r = scalar_text(req.at("repetitions"), "--repetitions");
    const int64_t v = parse_int(r, "--repetitions");
    if (v < 1 || v > 100000) throw UsageError("--repetitions: " + r + " is outside [1, 100000]");
    cfg.repetitions = static_cast<int>(v);
  }
  // A suite repeats each batch until it lasts its min-time. An explicit workload selection runs
  // exactly the batch its parameters describe (one pass over `tasks`), unless min_time asks for
  // more: "10,000 tasks" then means one batch of 10,000, not as many as fill a second.
  if (has("workloads")) cfg.min_time_s = 0;
  if (has("min_time"))
    cfg.min_time_s = parse_seconds(scalar_text(req.at("min_time"), "--min-time"), "--min-time");
  if (has("timeout")) {
    cfg.timeout_s = parse_seconds(scalar_text(req.at("timeout"), "--timeout"), "--timeout");
    if (cfg.timeout_s <= 0) throw UsageError("--timeout: must be more than 0");
  }
  if (has("seed")) {
    const std::string s = scalar_text(req.at("seed"), "--seed");
    const int64_t v = parse_int(s, "--seed");
    if (v < 0) throw UsageError("--seed: " + s + " must not be negative");
    cfg.seed = static_cast<uint64_t>(v);
  }
  const std::string scaling =
      has("scaling") ? scalar_text(req.at("scaling"), "--scaling") : "strong";
  if (scaling != "strong" && scaling != "weak")
    throw UsageError("--scaling: '" + scaling + "' is not strong or weak");
  cfg.weak_scaling = scaling == "weak";
  if (has("interleave")) {
    const json& v = req.at("interleave");
    if (!v.is_boolean()) throw UsageError("--interleave: expected true or false");
    cfg.interleave = v.get<bool>();
  }
  if (has("trace")) {
    cfg.trace_path = scalar_text(req.at("trace"), "--trace");
    if (cfg.trace_path.empty()) throw UsageError("--trace: empty path");
  }
  if (has("trace_cap")) {
    const std::string s = scalar_text(req.at("trace_cap"), "--trace-cap");
    const int64_t v = parse_int(s, "--trace-cap");
    if (v < 1 || v > 100'000'000)
      throw UsageError("--trace-cap: " + s + " is not between 1 and 100000000 events");
    cfg.trace_cap = static_cast<size_t>(v);
  }
  if (has("sched_trace")) {
    const json& v = req.at("sched_trace");
    if (!v.is_boolean()) throw UsageError("--sched-trace: expected true or false");
    cfg.sched_trace = v.get<bool>();
  }
  // Shorthands for model parameters.
  for (const char* k : {"checkpoint", "gil_policy", "switch_interval_us", "pin"})
    if (has(k)) cfg.params[k] = scalar_text(req.at(k), flag(k));
  if (has("params")) {
    const json& p = req.at("params");
    if (p.is_object()) {
      for (const auto& [k, v] : p.items()) {
        if (k.empty()) throw UsageError("--param: empty key");
        cfg.params[k] = scalar_text(v, "--param " + k);
      }
    } else if (p.is_array()) {
      for (const json& e : p) {
        const std::string kv = scalar_text(e, "--param");
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          throw UsageError("--param: '" + kv + "' is not key=value");
        cfg.params[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    } else {
      throw UsageError("--param: expected an object or a list of key=value strings");
    }
  }
  validate(cfg);
  return cfg;
}

}  // namespace concbench
