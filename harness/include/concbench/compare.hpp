// `bench_runner compare`: reports from different runs or machines, cell by cell.
//
// Every report after the first is compared with the first (BASE). A cell is matched by workload,
// model, worker count and parameters. Per matched cell: the ratio of medians of the time per
// task and of the throughput (NEW / BASE), and a two-sided Mann-Whitney U test over the verified
// repetitions of the time per task, whose verdict is "significant", "not significant" or "too
// few repetitions" (when even complete separation of the samples could not reach the level).
// Per comparison: the geometric mean of the ratios over matched cells, and the context fields in
// which the machines or the runs differ.
//
// normalize divides each report's times by its own serial baseline for the workload (the
// cell's serial_baseline model at one worker, "serial" for C++ models), so machines of
// different speeds compare by what each model gains over serial there. Conclusions (which model
// beats which, per workload) are computed either way. Each report's side of a conclusion is a
// ratio of medians with a percentile bootstrap interval at level 1 - alpha; it is a clear
// ordering when the whole interval lies beyond 1 + min_effect_pct / 100 (or below its inverse).
// Verdicts:
// "holds" (every report clear, the same way), "differs" (two reports clear and opposite),
// "within noise" (anything else).
//
// The gate (fail_on_regression_pct): a cell gates when its time per task rose by more than that
// many percent and the test says significant, when it verified in BASE and did not in NEW, or
// when a cell of BASE is missing from NEW (no cell with its workload, model, workers and
// parameters). Cells only in NEW are listed and do not gate.
//
// fail_on_broken gates on the last two alone, never on timings: for a BASE made on another
// machine, whose times say nothing about this one, it still catches a benchmark that stopped
// verifying or vanished.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace concbench {

struct CompareOptions {
  bool normalize = false;
  double alpha = 0.05;  // significance level of the Mann-Whitney test; conclusions' 1 - level
  // A conclusion's interval must lie beyond 1 + this / 100 (or below its inverse) to count as
  // an ordering: a 3% win beyond noise on one machine is not a claim about models.
  double min_effect_pct = 10;
  std::optional<double> fail_on_regression_pct;
  bool fail_on_broken = false;  // gate on failing or missing cells only (implied by the above)
};

struct LoadedReport {
  std::string path;
  nlohmann::json report;  // already through validate_report()
};

// The comparison as data ("kind": "concbench-compare"); --format json prints it as is.
nlohmann::json compare_reports(const std::vector<LoadedReport>& reports,
                               const CompareOptions& options);

enum class CompareFormat { text, markdown, json };
std::string format_comparison(const nlohmann::json& comparison, CompareFormat format);

// 1 when the gate is set and a cell of some comparison gates, otherwise 0.
int comparison_exit_code(const nlohmann::json& comparison);

}  // namespace concbench
