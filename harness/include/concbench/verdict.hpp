// `bench_runner verdict`: which model wins each workload of one report, by how much, and why.
//
// Groups: the cells of one workload that ran the same tasks (equal workload_params; `tasks` is
// ignored under weak scaling, where it grows with the workers) form one comparison. Reports
// without workload_params group by the parameters every cell of the workload carries.
//
// Within a group each model is represented by its best cell: the ok cell with the lowest median
// time per task over its verified repetitions (any worker count). The winner is the model with
// the lowest; the runner-up the next. Margins are ratios of medians (runner-up time / winner
// time; the winner's serial_baseline model at one worker / winner time) with a percentile
// bootstrap interval at level 1 - alpha over the repetitions of the two cells
// (bootstrap_median_ratio, kBootstrapSeed: the same report gives the same intervals).
//
// A margin is clear when its whole interval lies above 1 and reaches beyond the tie zone
// 1 + min_effect_pct / 200 (compare's meaning: an interval within half the minimum effect of 1
// is a tie), and both cells have at least two verified repetitions. When the runner-up margin is
// not clear, the verdict is "no clear winner" between the winner and every model whose margin
// is not clear. Cells that failed, timed out or did not verify are listed and never win.
//
// Reasons are drawn from the cells' own figures, medians over verified repetitions:
//   parallelism  (cpu_user_ns + cpu_sys_ns) / wall_ns against the workers ("CPU 1.96 of 2
//                workers busy"); left out where the CPU time misses child processes;
//   GIL          gil_wait_ns.total / (workers x wall_ns) ("GIL wait 48% of worker time"); for a
//                threading model without that figure, parallelism below 1.3 at 2+ threads says
//                that the GIL lets one thread run Python at a time;
//   serialization  process pools: (serialize_ns + deserialize_ns) / (those + worker_exec_ns),
//                the share of the time spent on a task that went to its bytes, at the
//                workload's payload_bytes or the pickled / encoded bytes per task;
//   overlap      sleep_overlap or overlap (the workload's figure) for event-loop models, and
//                loop lag p99 (model_metrics.loop_lag) from 1 ms on ("stalls: ...");
//   fallback     time per task and context switches per task.
//
// Sweeps: groups of a workload that differ only in swept parameters (config.params values with
// commas) form a sweep; its entry in "crossovers" lists each point's winner ordered by the swept
// value (numerically when the values are numbers) and names where the winner changes.
//
// JSON (verdict_version 1): {"verdict_version", "options", "workloads": [{"workload",
// "params" (what tells this group from the workload's others), "winner", "workers",
// "time_per_task_ns", "margin_over_runner_up": {"ratio", "ci95"}, "runner_up",
// "margin_over_serial": {"ratio", "ci95", "baseline"}, "clear", "unclear_why", "tied",
// "reason", "others": [{"model", "workers", "time_per_task_ns", "ratio", "ci95", "reason"} or
// {"model", "workers", "status", "error"}], "sweep" (index into crossovers or null), "line"}],
// "crossovers": [{"workload", "keys", "fixed", "points": [...], "changes": [...], "summary",
// "line"}]}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace concbench {

struct VerdictOptions {
  double alpha = 0.05;  // the margins' intervals are at level 1 - alpha
  // As compare's: an interval within ±min_effect_pct / 2 percent of 1 is a tie.
  double min_effect_pct = 10;
};

// `report` must have passed validate_report (load_report does that).
nlohmann::json verdict(const nlohmann::json& report, const VerdictOptions& options = {});

enum class VerdictFormat { text, markdown, json };
// text: one line per workload (per group where a workload's groups are not a sweep);
// markdown: a table with one row per group, then the sweeps; json: the verdict as is.
std::string format_verdict(const nlohmann::json& verdict, VerdictFormat format);

}  // namespace concbench
