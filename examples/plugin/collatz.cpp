// example.collatz: a plugin's kernel and workload. A unit is one Collatz trajectory (n -> n/2 or
// 3n+1 until 1) from a start drawn from the step's seed; the kernel returns a fold of the step
// counts. The workload predicts them with a second, differently built count (runs of halvings
// taken at once by counting trailing zeros), so a kernel that skipped or botched work would not
// verify.
#include <bit>
#include <concbench/user.hpp>
#include <cstdint>
#include <memory>

namespace {

using namespace concbench;

KernelId g_collatz = 0;  // the table's id for our kernel, fixed when the plugin registers

// Starts below 2^20 keep every trajectory far below 2^64 (the highest point under 10^6 is about
// 5.7e10).
constexpr uint64_t kStartMask = (1u << 20) - 1;

uint64_t start_of(uint64_t seed, uint64_t unit) {
  return (mix64(seed + unit) & kStartMask) + 1;
}

uint64_t collatz_kernel(ExecContext& ctx, const KernelArgs& a) {
  uint64_t acc = a.seed;
  for (uint64_t u = 0; u < a.units; ++u) {
    uint64_t n = start_of(a.seed, u), steps = 0;
    while (n != 1) {
      n = (n % 2 == 0) ? n / 2 : 3 * n + 1;
      ++steps;
    }
    acc = fold(acc, steps);
    ctx.checkpoint();
  }
  return acc;
}

// The same counts, another way: a run of k halvings is one shift and k steps.
uint64_t predict_collatz(uint64_t seed, uint64_t units) {
  uint64_t acc = seed;
  for (uint64_t u = 0; u < units; ++u) {
    uint64_t n = start_of(seed, u), steps = 0;
    for (;;) {
      const int z = std::countr_zero(n);
      n >>= z;
      steps += static_cast<uint64_t>(z);
      if (n == 1) break;
      n = 3 * n + 1;
      ++steps;
    }
    acc = fold(acc, steps);
  }
  return acc;
}

class Collatz final : public PluginWorkload {
 public:
  std::string_view name() const override { return "example.collatz"; }
  std::string_view description() const override {
    return "example plugin: a unit is one Collatz trajectory from a start below 2^20";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(32, 0);
    p.push_back(ParamSpec::integer("units", "trajectories per task", 200, 1, 1'000'000'000));
    return p;
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    const auto units = static_cast<uint64_t>(p.get_int("units"));
    TaskSet ts;
    for (int64_t i = 0; i < p.get_int("tasks"); ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
      Step s;
      s.kind = StepKind::cpu;
      s.kernel = g_collatz;
      s.units = units;
      t.steps.push_back(s);
      // The chain execute_steps builds: the payload's hash, then each step's result, step i's
      // seed being step_seed(t.seed, i).
      ts.expected.push_back(
          fold(task_checksum_start(t), predict_collatz(step_seed(t.seed, 0), units)));
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }
};

}  // namespace

CONCBENCH_PLUGIN(reg) {
  g_collatz = reg.kernel("example.collatz", &collatz_kernel);
  reg.workload(std::make_unique<Collatz>());
}
