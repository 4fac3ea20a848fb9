#include "callable_workload.hpp"

#include <memory>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench::python {
namespace {

// Folded into a task's checksum once its result has been compared with the reference: the
// item then verifies only if the model ran it in this batch (the nonce) and the result agreed.
constexpr uint64_t kResultAgreed = 0x5245535f41475245ULL;

uint64_t predicted(uint64_t task_seed) {
  return fold(task_checksum_start(task_seed, {}), kResultAgreed);
}

class CallableWorkload final : public Workload {
 public:
  CallableWorkload(std::string name, std::string description, uint64_t inputs)
      : name_(std::move(name)), description_(std::move(description)), inputs_(inputs) {}
  std::string_view name() const override { return name_; }
  std::string_view description() const override { return description_; }
  std::string_view origin() const override { return "python"; }
  bool python_callable() const override { return true; }
  std::vector<ParamSpec> params() const override {
    // No payload of ours: what crosses a process boundary is the user's input and result,
    // whose pickled sizes the models record.
    auto p = common_params(static_cast<int64_t>(inputs_), 0);
    std::erase_if(p, [](const ParamSpec& s) { return s.name == "payload_bytes"; });
    for (auto& s : p)
      if (s.name == "tasks") s.help = "calls per batch (task i takes input i mod inputs)";
    return p;
  }
  nlohmann::json metrics(const Params&, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    return {{"inputs", inputs_},
            {"calls_per_s",
             wall_ns ? static_cast<double>(tasks_run) * 1e9 / static_cast<double>(wall_ns) : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    TaskSet ts;
    const int64_t n = p.get_int("tasks");
    ts.tasks.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, 0);
      ts.expected.push_back(predicted(t.seed));
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }

 private:
  std::string name_, description_;
  uint64_t inputs_;
};

}  // namespace

void register_callable_workload(const std::string& name, const std::string& description,
                                uint64_t inputs) {
  if (inputs == 0) throw UsageError("bench: no inputs");
  register_workload(std::make_unique<CallableWorkload>(name, description, inputs));
}

uint64_t callable_checksum(uint64_t task_seed, uint64_t nonce) {
  return seal(predicted(task_seed), nonce);
}

}  // namespace concbench::python
