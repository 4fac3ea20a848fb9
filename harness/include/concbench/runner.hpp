// The runner: the matrix workloads x models x worker counts x repetitions, with a warm-up,
// calibration to --min-time, verification of every task's checksum, and a per-cell timeout
// after which the cell is recorded as timed out and the suite goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "concbench/counters.hpp"
#include "concbench/params.hpp"
#include "concbench/stats.hpp"

namespace concbench {

struct RunConfig {
  std::string suite = "quick";
  std::vector<std::string> workloads;
  std::vector<std::string> models;
  std::vector<int> workers;
  int repetitions = 5;
  double min_time_s = 0.1;
  double timeout_s = 120;
  // Parameters the suite sets per workload (smaller ones for smoke), then the user's --param,
  // which apply to every selected workload or model that declares the key. A value with commas
  // ("v1,v2,v3") for an integer or choice parameter is a sweep: one cell per value, the
  // Cartesian product for several keys; a text parameter keeps its commas.
  std::map<std::string, std::map<std::string, std::string>> suite_params;
  std::map<std::string, std::string> params;
  uint64_t seed = 1;
  // Strong scaling (default): the same tasks split across N workers. Weak scaling: N times the
  // tasks at N workers, so ideal scaling keeps wall time flat; speedup stays a throughput ratio.
  bool weak_scaling = false;
  // Interleaved: every cell is set up and calibrated first, then repetition r of every cell runs
  // before repetition r + 1 of any, so a drift of the whole machine (a neighbour, thermal
  // throttling) spreads over all cells instead of looking like one cell's effect.
  bool interleave = false;
  // --trace FILE: the first measured repetition of each cell records its timeline (trace.hpp),
  // at most trace_cap events per cell. Empty: no trace, and no model records anything.
  std::string trace_path;
  size_t trace_cap = 200'000;
  // --sched-trace: the same repetition also records the scheduler's switches and wake-ups
  // (counters.hpp: SchedTrace), where tracepoints are permitted; the cell says why otherwise.
  bool sched_trace = false;
};

// The named suites: "smoke" (seconds, for tests), "quick" (the default, under a minute),
// "full". Throws UsageError for another name.
RunConfig suite_config(const std::string& name);
std::vector<std::string> suite_names();

// Checks names, numbers and parameters; throws UsageError naming the first problem.
void validate(const RunConfig& cfg);

struct RepetitionResult {
  // The model's own timed region (BatchResult::span), or the whole run() when the model marks
  // none; outer_wall_ns is always the whole run(), the harness's bookkeeping included.
  uint64_t wall_ns = 0;
  uint64_t outer_wall_ns = 0;
  // CPU over the same region: this process, every thread (helpers such as the echo peer too),
  // plus the other processes that ran tasks (a process pool's workers) when cpu_covers_children.
  uint64_t cpu_user_ns = 0;
  uint64_t cpu_sys_ns = 0;
  bool cpu_covers_children = false;
  uint64_t rounds = 1;
  // Latency is taken on one item in latency_stride; the clock reads and CPU samples that costs
  // are estimated per item (instrumentation_ns_per_item) so the figure can be read net of them.
  uint64_t latency_stride = 1;
  double instrumentation_ns_per_item = 0;
  // Shorter than --min-time (only reported for a repetition the runner could not lengthen).
  bool short_of_min_time = false;
  uint64_t tasks = 0;  // completed work items
  double throughput_per_s = 0;
  LatencySummary latency;
  CounterValues counters;
  nlohmann::json metrics = nlohmann::json::object();
  nlohmann::json model_metrics = nlohmann::json::object();
  // The worker processes' memory at the end of the batch (process-based models): their number
  // and the sums of their USS, PSS and peak RSS; null where the model runs in this process.
  nlohmann::json memory = nullptr;
  // Where each worker's wall time went (attribution.hpp: attribute_repetition).
  nlohmann::json attribution = nullptr;
  // The worker processes that ran this batch (BatchResult::worker_pids).
  std::vector<int> worker_pids;
  bool verified = false;
  uint64_t failed_tasks = 0;                 // threw or crashed
  uint64_t wrong_checksums = 0;              // completed with a result that does not verify
  uint64_t not_run = 0;                      // never completed (cancelled)
  std::vector<std::string> failure_samples;  // the first few reasons
};

struct CellResult {
  std::string workload;
  std::string model;
  int workers = 1;
  std::map<std::string, std::string> params;  // resolved workload and model parameters
  // The workload's own part of `params`: cells with equal workload_params ran the same tasks, so
  // only they are compared with one another (speedup, verdict).
  std::map<std::string, std::string> workload_params;
  std::string workload_origin = "builtin";  // Workload::origin()
  std::string status = "ok";                // ok | failed | timed_out | error
  std::string error;
  uint64_t setup_ns = 0;
  uint64_t teardown_ns = 0;
  uint64_t warmup_wall_ns = 0;
  uint64_t rounds = 1;  // passes over the task list per repetition (calibration)
  uint64_t tasks_per_round = 0;
  int calibration_trials = 0;         // batches run to find `rounds`, the warm-up not counted
  int short_repetitions_retaken = 0;  // came in under --min-time: rounds raised, measured again
  // Peak RSS of this process over the cell (setup to the last repetition) plus the largest of
  // the worker processes' summed peaks, and the OS threads this process had while the cell ran
  // (sampled by the runner's watchdog), so an address space and a thread are numbers per cell.
  nlohmann::json memory = nlohmann::json::object();
  std::vector<RepetitionResult> repetitions;
  // --trace: {events (Chrome trace events of the traced repetition), summary}, else null.
  nlohmann::json trace = nullptr;
  // --sched-trace: SchedTrace::summarize of the traced repetition, else null.
  nlohmann::json sched_trace = nullptr;
};

struct CellSpec {
  std::string workload;
  std::string model;
  int workers = 1;
  // The values this cell takes of the swept parameters (--param key=v1,v2: one cell per value,
  // the Cartesian product for several keys); empty without a sweep.
  std::map<std::string, std::string> sweep{};
};

// The cells of the matrix in run order. Single-worker models get one cell at workers = 1.
std::vector<CellSpec> expand_matrix(const RunConfig& cfg);

// Runs one cell under the timeout; never throws for a failing model or workload (the failure is
// the result). Abandons, rather than waits for, a cell whose workers ignore cancellation.
CellResult run_cell(const CellSpec& spec, const RunConfig& cfg);

// Runs the whole matrix; on_cell is called after each cell (the CLI rewrites its report then,
// so a crash later loses nothing already measured).
using CellCallback = std::function<void(const CellResult&, size_t index, size_t total)>;
using ProgressCallback =
    std::function<void(const CellSpec&, size_t index, size_t total, const std::string& phase)>;
std::vector<CellResult> run_suite(const RunConfig& cfg, const CellCallback& on_cell = {},
                                  const ProgressCallback& progress = {});

}  // namespace concbench
