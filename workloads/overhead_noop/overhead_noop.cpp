// overhead.noop: a task with no steps. Its checksum is the hash of its payload, so the cost a
// model adds per task (dispatch, wake-ups, copies, serialization) is all there is to measure.
#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

class Noop final : public Workload {
 public:
  std::string_view name() const override { return "overhead.noop"; }
  std::string_view description() const override {
    return "no work: the pure per-task cost of a model (payload hashed once)";
  }
  std::vector<ParamSpec> params() const override { return common_params(2000, 64); }
  TaskSet generate(const Params& p, uint64_t seed) const override {
    TaskSet ts;
    const int64_t n = p.get_int("tasks");
    for (int64_t i = 0; i < n; ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
      ts.expected.push_back(task_checksum_start(t));
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }
  nlohmann::json metrics(const Params&, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    return {{"ns_per_task",
             tasks_run ? static_cast<double>(wall_ns) / static_cast<double>(tasks_run) : 0.0}};
  }
};

}  // namespace

const Workload& overhead_noop_workload() {
  static const Noop w;
  return w;
}

}  // namespace concbench
