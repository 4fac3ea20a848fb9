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
// Each unit also costs what interpreting it costs. By default (instruction_work = -1) that is the
// emulated interpreter's: an iteration of CPython's `counter += 1` loop is 7 bytecodes at its
// InterpreterCost::bytecode_ns, spread as CPython executes them (see the kernel), and with
// call_between the cost of calling one() (InterpreterCost::call_ns) sits after the load: the
// call half before the check the callee makes on entry, the return half after it, followed by
// the caller's own check where the version makes one (3.10 and earlier). That work is burnt, not
// verified (like an echo round's Python-level work): it depends on the model's calibration, which
// the workload cannot predict. instruction_work >= 0 instead does that many LCG steps per
// instruction, the same for every model, and the checksum covers them.
#include <atomic>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr uint64_t kCallBetween = 1;
constexpr uint64_t kInterpreterWork = 2;  // instruction_work = -1: the interpreter's, burnt

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
    p.push_back(ParamSpec::integer(
        "instruction_work",
        "LCG steps per instruction; -1: the emulated interpreter's cost per bytecode and call", -1,
        -1, 1'000'000));
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
    const int64_t iw = p.get_int("instruction_work");
    const uint64_t work = iw < 0 ? 0 : static_cast<uint64_t>(iw);
    s.arg = (work << 2) | (iw < 0 ? kInterpreterWork : 0) |
            (p.get_int("call_between") ? kCallBetween : 0);
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
  const uint64_t work = a.arg >> 2;
  // The interpreter's costs as burn steps, resolved before the loop (the first conversion
  // measures the spin rate; the warm-up repetition pays it). CPython 3.9's loop, `for _ in r:
  // counter += 1`, is FOR_ITER, STORE_FAST, LOAD_GLOBAL, LOAD_CONST, INPLACE_ADD, STORE_GLOBAL,
  // JUMP_ABSOLUTE, and it checks the eval breaker before each instruction except those the one
  // before dispatched fast (after STORE_FAST and LOAD_CONST): five checks, two of them between
  // the load and the store. The instruction checkpoints below sit where those five do, so the
  // share of switches that lose an update is CPython's; under 3.10 and later only the back edge
  // checks, with the callee's entry and, under 3.10, the caller's check once the call returns.
  uint64_t for_iter = 0, before_load = work, before_add = work, before_store = work, back_edge = 0,
           call = 0, ret = 0;
  if (a.arg & kInterpreterWork) {
    const InterpreterCost& c = ctx.interpreter_cost();
    const double per_ns = static_cast<double>(lcg_steps_for_ns(1000)) / 1000.0;
    auto steps = [&](double ns) { return static_cast<uint64_t>(ns * per_ns + 0.5); };
    for_iter = steps(c.bytecode_ns);
    before_load = steps(2 * c.bytecode_ns);  // STORE_FAST, LOAD_GLOBAL
    before_add = steps(2 * c.bytecode_ns);   // LOAD_CONST, INPLACE_ADD
    before_store = steps(c.bytecode_ns);     // STORE_GLOBAL
    back_edge = steps(c.bytecode_ns);        // JUMP_ABSOLUTE
    // call_ns is what `x += one()` costs over `x += 1`: the call (LOAD_GLOBAL one, PRECALL,
    // CALL pushing the frame) before the callee's RESUME checks, and the return (LOAD_CONST,
    // RETURN_VALUE popping the frame) after it. As many bytecodes and a frame operation each
    // side, so half and half.
    call = call_between ? steps(c.call_ns / 2) : 0;
    ret = call_between ? steps(c.call_ns - c.call_ns / 2) : 0;
  }
  const bool verified_work = (a.arg & kInterpreterWork) == 0;
  uint64_t state = a.seed, burnt = a.seed;
  auto interpret = [&](uint64_t n) {
    if (verified_work) {
      for (uint64_t i = 0; i < n; ++i) state = lcg_step(state);
    } else {
      burnt = burn_lcg(burnt, n);
    }
  };
  uint64_t done = 0;
  for (uint64_t u = 0; u < a.units; ++u) {
    // Relaxed load and store, deliberately not a fetch_add: the race is the point.
    interpret(for_iter);
    ctx.instruction_checkpoint();
    interpret(before_load);
    uint64_t v = x.load(std::memory_order_relaxed);  // LOAD
    ctx.instruction_checkpoint();
    if (call_between) {
      burnt = burn_lcg(burnt, call);  // the call itself, up to the callee's first check
      ctx.checkpoint();               // the callee checks the eval breaker on entry
      burnt = burn_lcg(burnt, ret);   // its return
      ctx.after_call_checkpoint();    // 3.10 and earlier check again once it has returned
    }
    interpret(before_add);
    v += 1;  // ADD
    ctx.instruction_checkpoint();
    interpret(before_store);
    x.store(v, std::memory_order_relaxed);  // STORE
    ++done;
    ctx.instruction_checkpoint();
    interpret(back_edge);
    ctx.checkpoint();  // the loop's back-edge
  }
  sink_value(burnt);
  return fold(done, state);
}

const Workload& cpu_counter_race_workload() {
  static const CounterRace w;
  return w;
}

}  // namespace concbench
