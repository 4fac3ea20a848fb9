// Reading reports back: compare, validate and the plots trust what validate_report() accepted,
// so it checks every field they read, and nothing outside it reads a report unchecked.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "concbench/report.hpp"

namespace concbench {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw ReportError(where.empty() ? what : where + ": " + what);
}

const json& field(const json& obj, const std::string& where, const char* key) {
  if (!obj.contains(key)) fail(where, std::string("missing field '") + key + "'");
  return obj.at(key);
}

std::string at(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "." + key;
}

const json& need_object(const json& obj, const std::string& where, const char* key) {
  const json& v = field(obj, where, key);
  if (!v.is_object()) fail(at(where, key), "expected an object");
  return v;
}

const json& need_array(const json& obj, const std::string& where, const char* key) {
  const json& v = field(obj, where, key);
  if (!v.is_array()) fail(at(where, key), "expected an array");
  return v;
}

void need_string(const json& obj, const std::string& where, const char* key) {
  if (!field(obj, where, key).is_string()) fail(at(where, key), "expected a string");
}

void need_bool(const json& obj, const std::string& where, const char* key) {
  if (!field(obj, where, key).is_boolean()) fail(at(where, key), "expected true or false");
}

// Non-negative: no figure in a report is below zero, and a negative time would turn a ratio
// into nonsense rather than an error.
void need_number(const json& obj, const std::string& where, const char* key, bool nullable) {
  const json& v = field(obj, where, key);
  if (nullable && v.is_null()) return;
  if (!v.is_number())
    fail(at(where, key), nullable ? "expected a number or null" : "expected a number");
  if (v.get<double>() < 0) fail(at(where, key), "negative");
}

void need_count(const json& obj, const std::string& where, const char* key, long long min) {
  const json& v = field(obj, where, key);
  if (!v.is_number_integer()) fail(at(where, key), "expected an integer");
  if (v.get<long long>() < min) fail(at(where, key), "must be at least " + std::to_string(min));
}

void check_summary_stat(const json& s, const std::string& where, const char* key) {
  const json& v = field(s, where, key);
  if (v.is_null()) return;
  if (!v.is_object()) fail(at(where, key), "expected an object or null");
  for (const char* k : {"n", "median", "mean", "min", "max"})
    need_number(v, at(where, key), k, false);
  const json& ci = field(v, at(where, key), "ci95");
  if (!ci.is_array() || ci.size() != 2 || !ci[0].is_number() || !ci[1].is_number())
    fail(at(where, key) + ".ci95", "expected [low, high]");
}

void check_repetition(const json& r, const std::string& where) {
  if (!r.is_object()) fail(where, "expected an object");
  need_number(r, where, "wall_ns", false);
  need_number(r, where, "cpu_user_ns", false);
  need_number(r, where, "cpu_sys_ns", false);
  need_count(r, where, "tasks", 0);
  need_number(r, where, "throughput_per_s", false);
  need_bool(r, where, "verified");
  const json& lat = need_object(r, where, "task_latency_ns");
  for (const char* k : {"p50", "p99", "max"})
    need_number(lat, at(where, "task_latency_ns"), k, true);
  const json& counters = need_object(r, where, "counters");
  for (const auto& [name, value] : counters.items()) {
    if (name == "multiplexed") continue;
    if (!value.is_null() && !value.is_number())
      fail(at(where, "counters") + "." + name, "expected a number or null");
  }
  need_object(r, where, "metrics");
}

void check_cell(const json& c, const std::string& where) {
  if (!c.is_object()) fail(where, "expected an object");
  need_string(c, where, "workload");
  need_string(c, where, "model");
  need_count(c, where, "workers", 1);
  need_string(c, where, "status");
  need_object(c, where, "params");
  const json& reps = need_array(c, where, "repetitions");
  for (size_t i = 0; i < reps.size(); ++i)
    check_repetition(reps[i], at(where, "repetitions") + "[" + std::to_string(i) + "]");
  const json& s = need_object(c, where, "summary");
  const std::string sw = at(where, "summary");
  check_summary_stat(s, sw, "wall_ns");
  check_summary_stat(s, sw, "wall_ns_per_task");
  check_summary_stat(s, sw, "throughput_per_s");
  need_number(s, sw, "speedup", true);
  need_number(s, sw, "speedup_vs_serial", true);
  if (c.contains("serial_baseline") && !c["serial_baseline"].is_string())
    fail(at(where, "serial_baseline"), "expected a string");
}

// One line from a parse error: nlohmann's text starts with "[json.exception.parse_error.101]
// parse error at line 1, column 7:"; the byte offset says more to someone holding the file.
std::string parse_problem(const json::exception& e, size_t byte, size_t size) {
  std::string what = e.what();
  if (const size_t colon = what.find(": ");
      colon != std::string::npos && what.find("parse error") < colon)
    what = what.substr(colon + 2);
  for (char& ch : what)
    if (ch == '\n') ch = ' ';
  // Strip nlohmann's "[json.exception.out_of_range.406] " tag from the others too.
  if (what.rfind("[json.exception.", 0) == 0)
    if (const size_t close = what.find("] "); close != std::string::npos)
      what = what.substr(close + 2);
  if (byte == 0) return "not valid JSON (" + what + ")";
  std::string msg = "not valid JSON at byte " + std::to_string(byte) + " of " +
                    std::to_string(size) + " (" + what + ")";
  if (byte >= size) msg += "; the file looks truncated";
  return msg;
}

}  // namespace

void validate_report(const json& report) {
  if (!report.is_object()) fail("", "not a concbench report (the top level is not an object)");
  if (!report.contains("schema_version")) {
    if (report.contains("benchmarks") && report.contains("context"))
      fail("",
           "a Google Benchmark report, not a concbench one (no schema_version or results); "
           "use /usr/share/benchmark/compare.py for it");
    fail("", "not a concbench report (no schema_version)");
  }
  const json& version = report["schema_version"];
  if (!version.is_number_integer()) fail("schema_version", "expected an integer");
  if (version.get<long long>() != kSchemaVersion)
    fail("", "schema version " + version.dump() + " (this build reads version " +
                 std::to_string(kSchemaVersion) + ")");
  need_string(report, "", "generator");
  if (report["generator"].get<std::string>().rfind("concbench", 0) != 0)
    fail("generator", "'" + report["generator"].get<std::string>() + "' is not concbench");
  need_bool(report, "", "complete");
  need_object(report, "", "config");
  need_object(report, "", "context");
  need_array(report, "", "benchmarks");
  const json& results = need_array(report, "", "results");
  std::set<std::tuple<std::string, std::string, int, std::string>> seen;
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string where = "results[" + std::to_string(i) + "]";
    check_cell(results[i], where);
    const json& c = results[i];
    if (!seen.emplace(c["workload"], c["model"], c["workers"].get<int>(), c["params"].dump())
             .second)
      fail(where, "a second cell " + c["workload"].get<std::string>() + "/" +
                      c["model"].get<std::string>() + "/workers:" + c["workers"].dump());
  }
}

json load_report(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ReportError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ReportError(path + ": read error");
  const std::string text = ss.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw ReportError(path + ": empty file");
  json report;
  try {
    report = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ReportError(path + ": " + parse_problem(e, e.byte, text.size()));
  } catch (const json::exception& e) {
    // Not only syntax: a number like 1e999 overflows a double (out_of_range 406). Found by
    // fuzz_report; fuzz/corpus/report/number-overflow.json replays it.
    throw ReportError(path + ": " + parse_problem(e, 0, text.size()));
  }
  try {
    validate_report(report);
  } catch (const ReportError& e) {
    throw ReportError(path + ": " + e.what());
  }
  return report;
}

}  // namespace concbench
