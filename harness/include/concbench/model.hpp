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

#include "concbench/counters.hpp"
#include "concbench/io_env.hpp"
#include "concbench/params.hpp"
#include "concbench/task.hpp"

namespace concbench {

struct ModelConfig {
  int workers = 1;
  Params params;  // the model's own parameters, resolved against ModelInfo::params
  uint64_t seed = 0;
};

// One batch: `rounds` passes over `tasks`; work item k is tasks[k % tasks.size()] in round
// k / tasks.size(). Calibration raises `rounds` until a batch lasts --min-time.
struct Batch {
  const std::vector<Task>* tasks = nullptr;
  uint64_t rounds = 1;
  uint64_t items() const { return tasks->size() * rounds; }
};

struct TaskFailure {
  uint64_t item = 0;  // work item index
  std::string reason;
};

struct BatchResult {
  std::vector<uint64_t> checksums;  // per work item; meaningful where done[k]
  std::vector<uint8_t> done;        // 1 when the item ran to completion
  // Per completed item: from when the model took the item up to when its result was in hand
  // (for thread models, the task's own run time; for a process pool, the round trip).
  std::vector<uint64_t> latency_ns;
  std::vector<TaskFailure> failures;
  // Summed over every thread (and process) that ran tasks; see counters.hpp.
  CounterValues counters;
  nlohmann::json model_metrics = nlohmann::json::object();
  // What the batch's shared state recorded (io_env.hpp), for the workload's metrics.
  Observations observations;

  explicit BatchResult(uint64_t items = 0) : checksums(items, 0), done(items, 0) {}
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
