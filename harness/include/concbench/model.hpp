// An execution model runs a batch of tasks with N workers. Each model lives in one file under
// harness/models/ and knows workloads and platform components (counters, topology, the GIL),
// never the runner.
//
// Life cycle: setup() (start persistent workers; the runner times it apart from the batches),
// run() any number of times, teardown(). cancel() may be called from another thread at any
// time; run() then returns promptly with what finished, and the rest marked not done.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "concbench/attribution.hpp"
#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/counters.hpp"
#include "concbench/io_env.hpp"
#include "concbench/params.hpp"
#include "concbench/task.hpp"

namespace concbench {

struct ModelConfig {
  int workers = 1;
  Params params;  // the model's own parameters, resolved against ModelInfo::params
  uint64_t seed = 0;
  // The workload the cell runs. C++ models need only the tasks; a model that calls a Python
  // function (a python_callable workload) looks the function up by this name.
  std::string workload;
};

// One batch: `rounds` passes over `tasks`; work item k is tasks[k % tasks.size()] in round
// k / tasks.size(). Calibration raises `rounds` until a batch lasts --min-time.
//
// `nonce` is fresh for every batch (the runner draws it per repetition). Work item k must be
// executed with item_nonce(k), which execute_task seals into the item's checksum: a model that
// caches a task's result, or replays the previous round's, fails verification.
//
// Latency is sampled: item k's latency is taken only when k % latency_stride == 0 (a power of
// two the runner picks so a batch yields a few thousand samples), because two clock reads per
// item are a cost the model itself would not pay, and for a 20 ns task they would be half of it.
struct Batch {
  const std::vector<Task>* tasks = nullptr;
  uint64_t rounds = 1;
  uint64_t nonce = 0;
  uint64_t latency_stride = 1;
  // --trace: where the model records this batch's timeline (trace_buffer.hpp), or nothing. Only
  // one repetition per cell is traced, so the others run exactly as without --trace.
  BatchTrace* trace = nullptr;
  uint64_t items() const { return tasks->size() * rounds; }
  bool sampled(uint64_t k) const { return (k & (latency_stride - 1)) == 0; }
  uint64_t item_nonce(uint64_t k) const { return round_nonce(nonce, k / tasks->size()); }
};

struct TaskFailure {
  uint64_t item = 0;  // work item index
  std::string reason;
};

struct BatchResult {
  std::vector<uint64_t> checksums;  // per work item; meaningful where done[k]
  std::vector<uint8_t> done;        // 1 when the item ran to completion
  // Latency samples (Batch::latency_stride): from when the model took the item up to when its
  // result was in hand (for thread models, the task's own run time; for a process pool, the
  // round trip). Models that write slot k / latency_stride preallocate it (for_batch) and leave
  // kNoSample where the item did not complete; others append. The runner ignores kNoSample.
  std::vector<uint64_t> latency_ns;
  static constexpr uint64_t kNoSample = ~uint64_t{0};
  std::vector<TaskFailure> failures;
  // Summed over every thread (and process) that ran tasks; see counters.hpp.
  CounterValues counters;
  nlohmann::json model_metrics = nlohmann::json::object();
  // What the batch's shared state recorded (io_env.hpp), for the workload's metrics.
  Observations observations;
  // The model's own timed region: from just before the first item is handed out to just after
  // the last result is in hand, with the process's CPU time at both ends (WorkSpan, below).
  // Everything else run() does (allocating, merging logs, reading counters, encoding metrics)
  // lies outside it. A model that leaves it unset is timed by the runner around run().
  struct Span {
    uint64_t wall_ns = 0;
    uint64_t cpu_user_ns = 0, cpu_sys_ns = 0;  // this process, every thread
    bool set = false;
  } span;
  // CPU time of other processes that ran this batch's tasks (a process pool's workers), over the
  // same region: getrusage(RUSAGE_SELF) never sees live children.
  uint64_t child_cpu_user_ns = 0, child_cpu_sys_ns = 0;
  bool has_child_cpu = false;
  // The other processes that ran this batch's tasks, alive when run() returns: the runner reads
  // their memory (USS, PSS, peak RSS) then, outside the timed region.
  std::vector<int> worker_pids;
  // Where each worker's time went (attribution.hpp), one entry per worker; empty where the model
  // records none, with the reason in attribution_unavailable. Filled from the workers' own
  // records after the batch.
  std::vector<WorkerAttribution> attribution;
  std::string attribution_unavailable;

  // Opens and closes `span`; call begin() right before handing out the first item and end()
  // right after the last result is in hand (both read the clock and getrusage once).
  void begin_work() {
    const CpuTimes c = process_cpu_times();
    span_start_cpu_ = c;
    span.wall_ns = monotonic_ns();
  }
  void end_work() {
    const uint64_t t1 = monotonic_ns();
    const CpuTimes c = process_cpu_times();
    span.wall_ns = t1 - span.wall_ns;
    span.cpu_user_ns = c.user_ns - span_start_cpu_.user_ns;
    span.cpu_sys_ns = c.sys_ns - span_start_cpu_.sys_ns;
    span.set = true;
  }

  explicit BatchResult(uint64_t items = 0) : checksums(items, 0), done(items, 0) {}
  // Every per-item slot allocated (and touched) up front, outside the timed region.
  static BatchResult for_batch(const Batch& b) {
    BatchResult r(b.items());
    r.latency_ns.assign((b.items() + b.latency_stride - 1) / b.latency_stride, kNoSample);
    return r;
  }

 private:
  CpuTimes span_start_cpu_;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void setup(const ModelConfig& cfg) { cfg_ = cfg; }
  virtual BatchResult run(const Batch& batch) = 0;
  virtual void teardown() {}
  // Thread-safe; idempotent.
  virtual void cancel() = 0;

 protected:
  ModelConfig cfg_;
};

struct ModelInfo {
  std::string name;
  std::string description;
  std::vector<ParamSpec> params;
  bool single_worker = false;  // runs on the calling thread only: one cell, workers = 1
  std::function<std::unique_ptr<Model>()> create;
  // Checks parameters beyond their declared type (a placement against this machine); throws
  // UsageError. Optional.
  std::function<void(const Params&)> validate;
  // Tasks run in other processes: nothing but the task itself is shared.
  bool separate_processes = false;
  // The workloads this model can run; empty means every one. The matrix has no cell for the
  // others (a pure-Python model has no cpu.stream).
  std::vector<std::string> workloads{};
  // Workload parameters this model sets unless the user's --param does: they override the
  // suite's, so a model whose unit of work is slower (pure Python) keeps batches short. Each
  // cell records the parameters it ran with.
  std::map<std::string, std::map<std::string, std::string>> workload_params{};
  // The single-worker model that speedup_vs_serial divides by.
  std::string serial_baseline = "serial";
  // How many tasks one worker can have in progress at once: 1 for a thread or a process that
  // runs a task to its end, 0 for unbounded (an event loop overlaps every task it holds). The
  // runner bounds a batch's sleeps by wall time times this concurrency, so a model that sleeps
  // short fails verification instead of looking fast.
  int in_flight_per_worker = 1;
  // What this model's task latency measures, in the report beside the figure, so that a p99
  // compared across models is read for what it is.
  std::string latency_means = "the task's run time on its worker, from claiming it to its result";

  // True for a model that runs a task by calling a Python function (the cpython.* models):
  // only such models take a python_callable workload (concbench.bench's).
  bool python_callables = false;
  // True for a model whose tasks share nothing an IO task could queue behind but the CPUs: no
  // lock, no event loop, no scheduler thread (free threads, pools of OS threads, worker
  // processes). A long round trip there is the kernel's scheduling, not a convoy, and the report
  // does not flag one. False (the default) flags by the round-trip times alone.
  bool shares_only_cpus = false;

  bool runs(std::string_view workload) const {
    if (workloads.empty()) return true;
    for (const auto& w : workloads)
      if (w == workload) return true;
    return false;
  }
};

// Every model: the built-in ones, then those added with register_model.
std::vector<const ModelInfo*> all_models();
// nullptr when there is no such model. The pointer stays valid for the life of the process.
const ModelInfo* find_model(std::string_view name);
// Adds a model defined outside the harness (the Python module's cpython.* models). Call it before
// any run starts; a second registration under the same name replaces nothing and throws
// std::invalid_argument.
void register_model(ModelInfo info);

}  // namespace concbench
