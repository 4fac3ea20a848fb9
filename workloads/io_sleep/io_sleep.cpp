// io.sleep: each task waits on a timer for sleep_us. The step's value is the requested duration
// only if the wait really lasted that long, so a model cannot skip it.
#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

class Sleep final : public Workload {
 public:
  std::string_view name() const override { return "io.sleep"; }
  std::string_view description() const override { return "a timer wait of sleep_us per task"; }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(32, 0);
    p.push_back(
        ParamSpec::integer("sleep_us", "microseconds each task waits", 1000, 0, 3'600'000'000LL));
    return p;
  }
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::sleep;
    s.duration_ns = static_cast<uint64_t>(p.get_int("sleep_us")) * 1000;
    return one_step_tasks(p, seed, s, [&](const Task& t) { return predict_io_step(s, t.seed, 0); });
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    // Overlap: how many sleeps were in progress at once, on average (1 = fully serialized).
    const double slept =
        static_cast<double>(p.get_int("sleep_us")) * 1e3 * static_cast<double>(tasks_run);
    return {{"sleep_overlap", wall_ns ? slept / static_cast<double>(wall_ns) : 0.0}};
  }
};

}  // namespace

const Workload& io_sleep_workload() {
  static const Sleep w;
  return w;
}

}  // namespace concbench
