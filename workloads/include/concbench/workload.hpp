// A workload produces the tasks of a batch and predicts each task's checksum. The prediction is
// computed independently of the execution path (a closed form, known digits, the bytes that
// were sent), so a model that skips work fails verification instead of looking fast.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "concbench/io_env.hpp"
#include "concbench/params.hpp"
#include "concbench/task.hpp"

namespace concbench {

struct TaskSet {
  std::vector<Task> tasks;
  std::vector<uint64_t> expected;  // expected[i] is tasks[i]'s checksum; models never see it
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  // Workloads have `tasks` (unless the batch is fixed), `payload_bytes` and `fault`; the rest
  // are their own.
  virtual std::vector<ParamSpec> params() const = 0;
  // The batch, with the fault the `fault` parameter asks for injected into task 0 (after its
  // checksum was predicted, so the runner must notice).
  TaskSet make_tasks(const Params& p, uint64_t seed) const;
  // Workload-specific figures for a repetition that ran `tasks_run` tasks in `wall_ns`, given
  // what the batch observed (shared counter, round-trip samples).
  virtual nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                                 const Observations& obs) const;
  // Checks what a fully completed batch observed, beyond the per-item checksums (work that
  // leaves no trace in a checksum: a spinner's units). Returns why it does not verify, or an
  // empty string. Runs outside the timed region.
  virtual std::string verify_batch(const Params&, const TaskSet&, const Observations&) const {
    return {};
  }
  // A workload whose tasks must all run at once (a responder and its CPU-bound companions)
  // fixes the worker count; 0 means any count will do.
  virtual int required_workers(const Params&) const { return 0; }
  // False when repeating the batch to reach --min-time makes no sense (its length is set by
  // its own parameters, as a latency test's is).
  virtual bool calibrate() const { return true; }
  // True when the tasks of a batch must share one address space (a responder and spinners that
  // stop on its flag): such a workload cannot run under a model of separate processes.
  virtual bool needs_shared_memory() const { return false; }
  // Where the workload was defined: "builtin" (workloads/<name>/), "profile" (a workload file,
  // profile.hpp), "plugin" (a library loaded with --plugin, user.hpp) or "python" (a Python
  // function given to concbench.bench). Reports record it beside the cell.
  virtual std::string_view origin() const { return "builtin"; }
  // True when a task is a call of a Python function (concbench.bench): only models that declare
  // ModelInfo::python_callables can run it; a C++ model has no interpreter to call it in.
  virtual bool python_callable() const { return false; }

 protected:
  virtual TaskSet generate(const Params& p, uint64_t seed) const = 0;
};

// The `tasks`, `payload_bytes` and `fault` parameters with a workload's own defaults.
// fault=throw makes task 0 throw; fault=wrong_checksum makes it return a wrong result. They
// exist so tests (and users) can see that failures are reported as failures, never as speed.
std::vector<ParamSpec> common_params(int64_t default_tasks, int64_t default_payload_bytes);
// A task with the common fields filled: id, a seed derived from (seed, id), a payload.
Task make_task(uint64_t id, uint64_t seed, int64_t payload_bytes);

// `tasks` tasks of the single step `step`, each predicted as fold(payload hash, predict(task)),
// where predict gives the value the step returns when it really did its work.
TaskSet one_step_tasks(const Params& p, uint64_t seed, const Step& step,
                       const std::function<uint64_t(const Task&)>& predict);

// Every workload: the built-in ones, then those added with register_workload, in that order.
std::vector<const Workload*> all_workloads();
// nullptr when there is no such workload. The pointer stays valid for the life of the process.
const Workload* find_workload(std::string_view name);
// Adds a workload defined outside workloads/ (a profile file, a plugin, a Python function).
// Call it before a run starts. A name already taken throws UsageError, except that a
// python_callable workload replaces an earlier python_callable one of the same name (each
// concbench.bench call describes its function afresh); the replaced object is kept alive, so
// pointers to it stay valid.
void register_workload(std::unique_ptr<Workload> w);

}  // namespace concbench
