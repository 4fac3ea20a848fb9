// cpu.counter_race: every unit does `x += 1` on one counter shared by the whole batch, as the
// three "instructions" an interpreter executes: load, add, store. The load and the store are
// separate relaxed atomics, so the race is well defined in C++ and an interleaving between them
// loses an update, just as a thread switch between CPython's LOAD and STORE does.
//
// lost_updates = increments performed - the counter's final value. Free threads lose updates on
// two or more cores. Behind the emulated GIL, whether a switch can land between the load and the
// store is the checkpoint policy's business: never with `backedge` (CPython 3.10+), often with
// `per_instruction` (3.9 and earlier), and always possible with call_between=1 (`x += one()`:
// the call checks the eval breaker on every version).
//
// Each instruction also does `instruction_work` steps of an LCG: the cost of interpreting it.
// The default makes a unit cost about what a `x += 1` loop iteration costs CPython 3.11 (about
// 50 ns on the reference VM), so the same number of increments spans the same number of switch
// intervals as in CPython, and lost-update counts are comparable.
#include <atomic>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr uint64_t kCallBetween = 1;

class CounterRace final : public Workload {
 public:
  std::string_view name() const override { return "cpu.counter_race"; }
  std::string_view description() const override {
    return "x += 1 on a shared counter as load/add/store; reports lost updates";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(2, 0);
    p.push_back(ParamSpec::integer("units", "increments per task", 1'000'000, 1, 1'000'000'000));
    p.push_back(ParamSpec::integer("call_between", "1: a call between load and store (x += one())",
                                   0, 0, 1));
    p.push_back(ParamSpec::integer("instruction_work",
                                   "LCG steps per instruction (the interpreter's cost)", 16, 0,
                                   1'000'000));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations& obs) const override {
    const uint64_t increments = static_cast<uint64_t>(p.get_int("units")) * tasks_run;
    const uint64_t lost = increments > obs.shared_counter ? increments - obs.shared_counter : 0;
    return {{"increments", increments},
            {"final_value", obs.shared_counter},
            {"lost_updates", lost},
            {"increments_per_s",
             wall_ns ? static_cast<double>(increments) * 1e9 / static_cast<double>(wall_ns) : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("counter_race");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    const auto work = static_cast<uint64_t>(p.get_int("instruction_work"));
    s.arg = (work << 1) | (p.get_int("call_between") ? kCallBetween : 0);
    // The checksum covers the increments this task performed and the interpretation work,
    // which the race cannot change; what the race changes is reported as lost_updates.
    return one_step_tasks(p, seed, s, [&](const Task& t) {
      return fold(s.units, lcg_advance(step_seed(t.seed, 0), 3 * work * s.units));
    });
  }
};

}  // namespace

uint64_t counter_race_kernel(ExecContext& ctx, const KernelArgs& a) {
  std::atomic<uint64_t>& x = ctx.io().shared_counter();
  const bool call_between = (a.arg & kCallBetween) != 0;
  const uint64_t work = a.arg >> 1;
  uint64_t state = a.seed;
  auto interpret = [&] {
    for (uint64_t i = 0; i < work; ++i) state = lcg_step(state);
  };
  uint64_t done = 0;
  for (uint64_t u = 0; u < a.units; ++u) {
    // Relaxed load and store, deliberately not a fetch_add: the race is the point.
    interpret();
    uint64_t v = x.load(std::memory_order_relaxed);  // LOAD
    ctx.instruction_checkpoint();
    if (call_between) ctx.checkpoint();  // a call checks the eval breaker
    interpret();
    v += 1;  // ADD
    ctx.instruction_checkpoint();
    interpret();
    x.store(v, std::memory_order_relaxed);  // STORE
    ++done;
    ctx.checkpoint();  // the loop's back-edge
  }
  return fold(done, state);
}

const Workload& cpu_counter_race_workload() {
  static const CounterRace w;
  return w;
}

}  // namespace concbench
