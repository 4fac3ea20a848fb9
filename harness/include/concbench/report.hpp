// The versioned JSON report: what CI, `bench_runner compare` and the Python module rely on.
// Schema (version 1):
//   schema_version, generator, complete, config{...}, context{...} (machine.hpp),
//   results[]: workload, model, workers, params, status, error, setup_ns, teardown_ns,
//              warmup_wall_ns, rounds, tasks_per_round,
//              repetitions[]: wall_ns, cpu_user_ns, cpu_sys_ns, tasks, throughput_per_s,
//                             task_latency_ns{p50,p99,max}, counters{...}, metrics{...},
//                             model_metrics{...}, verified, failed_tasks, wrong_checksums,
//                             not_run, failures[], attribution{wall_ns, workers[]: parts
//                             (cpu, runqueue, gil_wait, io_wait, serialize, deserialize, idle,
//                             unattributed), beside, within_tolerance} (attribution.hpp)
//              attribution: the verified repetitions' summed per worker and in total, shares,
//                           dominant part, check, fairness; convoy (report.cpp)
//              serial_baseline (the model speedup_vs_serial divides by),
//              summary: wall_ns, wall_ns_per_task, throughput_per_s (each n, median, mean,
//                       stddev, cv, min, max, ci95[lo, hi]), speedup, speedup_vs_serial
//   benchmarks[]: the same cells in Google Benchmark's JSON shape (per task times).
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "concbench/runner.hpp"

namespace concbench {

inline constexpr int kSchemaVersion = 1;

nlohmann::json config_to_json(const RunConfig& cfg);
nlohmann::json cell_to_json(const CellResult& cell);

// The whole report; speedups need every cell, so they are computed here.
nlohmann::json make_report(const RunConfig& cfg, const nlohmann::json& context,
                           const std::vector<CellResult>& cells, bool complete);

// The report built one finished cell at a time, as bench_runner writes it after each cell (so a
// crash loses no finished cell): each cell is converted once, when added, and a write costs a
// dump of what changed, not a conversion and a dump of every cell again (quadratic in the cells:
// 4 minutes of the smoke suite's 4 under ASan). report(c) equals make_report of the cells added.
class ReportBuilder {
 public:
  ReportBuilder(RunConfig cfg, nlohmann::json context);
  void add(const CellResult& cell);
  nlohmann::json report(bool complete) const;
  // write_report_atomic(path, report(complete)) without copying the cells; a partial report
  // (complete false) is written compact, from each cell's text as last dumped.
  void write(const std::string& path, bool complete);

 private:
  nlohmann::json header(bool complete) const;
  RunConfig cfg_;
  nlohmann::json context_;
  nlohmann::json results_ = nlohmann::json::array();
  nlohmann::json benchmarks_ = nlohmann::json::array();
  std::vector<std::string> cell_text_;  // results_[i].dump(), empty when it must be redone
  std::string benchmarks_text_;         // benchmarks_'s first benchmarks_dumped_ elements, dumped
  size_t benchmarks_dumped_ = 0;
};

// Writes `report` to `path` through a temporary file in the same directory and rename(2), so a
// reader (or a crash) sees the old file or the new one, never half of one. Throws
// std::runtime_error on failure.
void write_report_atomic(const std::string& path, const nlohmann::json& report);
// The same for text already made.
void write_text_atomic(const std::string& path, const std::string& text);
// Checks up front that `path` could be written (its directory exists and is writable, it is not
// a directory, and it does not exist unless `overwrite`: a report someone kept is not replaced by
// a typo); throws UsageError naming the problem.
void check_writable(const std::string& path, bool overwrite = false);

// A report that cannot be read: not JSON, truncated, another tool's, a newer schema, or missing
// what the schema promises. what() is one line naming the file and the first problem.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Checks `report` against the schema above, deeply enough that code reading the fields it names
// (compare, plots) never meets a missing field or a wrong type. Throws ReportError naming the
// JSON path of the first problem, e.g. "results[3].repetitions[0].wall_ns: expected a number".
void validate_report(const nlohmann::json& report);
// Reads, parses and validates the report at `path`; ReportError messages start with the path.
nlohmann::json load_report(const std::string& path);

// The summary table bench_runner prints.
std::string format_table(const nlohmann::json& report);

}  // namespace concbench
