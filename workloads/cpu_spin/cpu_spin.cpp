// cpu.spin: a pure integer loop. Each unit advances a 64-bit linear congruential generator
// kIterationsPerUnit times: a serial dependency chain the compiler can neither vectorize nor
// fold, and whose final state is predicted in O(log n) by LCG jump-ahead.
#include <algorithm>
#include <atomic>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr uint64_t kMul = 6364136223846793005ULL;
constexpr uint64_t kInc = 1442695040888963407ULL;
// About a microsecond on a current core: a "bytecode boundary" far finer than any switch
// interval, yet coarse enough that the checkpoint costs nothing measurable.
constexpr uint64_t kIterationsPerUnit = 1000;

// x after n steps of x = kMul * x + kInc (mod 2^64), by repeated squaring of the affine map
// (F. Brown, "Random number generation with arbitrary strides", 1994).
uint64_t lcg_jump(uint64_t x, uint64_t n) {
  uint64_t acc_mul = 1, acc_inc = 0, cur_mul = kMul, cur_inc = kInc;
  while (n != 0) {
    if (n & 1) {
      acc_mul *= cur_mul;
      acc_inc = acc_inc * cur_mul + cur_inc;
    }
    cur_inc = (cur_mul + 1) * cur_inc;
    cur_mul *= cur_mul;
    n >>= 1;
  }
  return acc_mul * x + acc_inc;
}

class Spin final : public Workload {
 public:
  std::string_view name() const override { return "cpu.spin"; }
  std::string_view description() const override {
    return "integer loop; a unit is 1000 dependent multiply-adds (about 1 us)";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(32, 0);
    p.push_back(ParamSpec::integer("units", "units of work per task", 2000, 1, 1'000'000'000));
    p.push_back(
        ParamSpec::integer("native", "1: run as a native section (releases a GIL)", 0, 0, 1));
    return p;
  }
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("spin");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    s.native = p.get_int("native") != 0;
    return one_step_tasks(
        p, seed, s, [&](const Task& t) { return spin_state_after(step_seed(t.seed, 0), s.units); });
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double units = static_cast<double>(p.get_int("units")) * static_cast<double>(tasks_run);
    return {{"units_per_s", wall_ns ? units * 1e9 / static_cast<double>(wall_ns) : 0.0}};
  }
};

}  // namespace

// LCG steps between two checkpoints. A tight pure-Python loop checks the eval breaker at every
// iteration's back edge, some 20 ns apart; a model that emulates an interpreter says how far
// apart (InterpreterCost::check_ns), and the units then check that often. How soon a holder
// sees a drop request decides how the lock's waiters race (measured here: with a check a unit,
// a microsecond apart, an IO thread beside two CPU-bound ones waited half as many intervals as
// under CPython 3.11; with CPython's spacing, as many). Otherwise a unit checks once, at its end.
uint64_t check_stride(const ExecContext& ctx) {
  const double ns = ctx.interpreter_cost().check_ns;
  if (ns <= 0) return kIterationsPerUnit;
  return std::clamp<uint64_t>(lcg_steps_for_ns(static_cast<uint64_t>(ns + 0.5)), 1,
                              kIterationsPerUnit);
}

// One unit of cpu.spin's work from x: kIterationsPerUnit steps, a checkpoint every `stride`.
inline uint64_t spin_unit(ExecContext& ctx, uint64_t x, uint64_t stride) {
  if (stride >= kIterationsPerUnit) {
    for (uint64_t i = 0; i < kIterationsPerUnit; ++i) x = x * kMul + kInc;
    ctx.checkpoint();
    return x;
  }
  uint64_t i = 0;
  for (; i + stride <= kIterationsPerUnit; i += stride) {
    for (uint64_t j = 0; j < stride; ++j) x = x * kMul + kInc;
    ctx.checkpoint();
  }
  for (; i < kIterationsPerUnit; ++i) x = x * kMul + kInc;
  return x;
}

uint64_t spin_state_after(uint64_t seed, uint64_t units) {
  return lcg_jump(seed, units * kIterationsPerUnit);
}

uint64_t lcg_advance(uint64_t x, uint64_t steps) {
  return lcg_jump(x, steps);
}

// Spins until the batch's responder is done (or `units`, a safety bound, run out), then checks
// its own work: the number of units varies, so the runner cannot predict the state, but the
// kernel can, by jump-ahead, and returns a fixed token only if the state is right.
uint64_t spin_until_stop_kernel(ExecContext& ctx, const KernelArgs& a) {
  const std::atomic<bool>& stop = ctx.io().stop_flag();
  ctx.io().companions().fetch_add(1, std::memory_order_relaxed);
  uint64_t x = a.seed;
  uint64_t u = 0;
  if (a.arg > 0) {
    // A long hold (latency.echo_long_hold): a.arg units without a check, then one, as a long C
    // call returns to the eval loop; the stop flag is a Python variable, looked at between calls.
    while (u < a.units && !stop.load(std::memory_order_relaxed)) {
      const uint64_t n = std::min(a.arg, a.units - u);
      for (uint64_t k = 0; k < n * kIterationsPerUnit; ++k) x = x * kMul + kInc;
      u += n;
      ctx.checkpoint();
    }
  } else {
    const uint64_t stride = check_stride(ctx);
    for (; u < a.units && !stop.load(std::memory_order_relaxed); ++u) x = spin_unit(ctx, x, stride);
  }
  // The check of x against u is the workload's (verify_batch), not the kernel's own: the code
  // being measured does not get to say that it did its work.
  ctx.io().record_spin({a.seed, u, x});
  return kSpinOkToken;
}

uint64_t spin_kernel(ExecContext& ctx, const KernelArgs& a) {
  const uint64_t stride = check_stride(ctx);
  uint64_t x = a.seed;
  for (uint64_t u = 0; u < a.units; ++u) x = spin_unit(ctx, x, stride);
  return x;
}

uint64_t lcg_steps_for_ns(uint64_t ns) {
  return static_cast<uint64_t>(static_cast<double>(ns) * spin_units_per_us() *
                               static_cast<double>(kIterationsPerUnit) / 1e3);
}

uint64_t burn_lcg(uint64_t x, uint64_t steps) {
  for (uint64_t i = 0; i < steps; ++i) x = x * kMul + kInc;
  return x;
}

double spin_units_per_us() {
  static const double rate = [] {
    // Five trials of 2000 units (a couple of milliseconds each); the fastest is the machine's.
    ExecContext ctx = [] {
      static std::atomic<uint32_t> breaker{0};
      return ExecContext(breaker, no_lock_hooks(), nullptr, 0);
    }();
    constexpr uint64_t kUnits = 2000;
    double best = 0;
    uint64_t sink = 0;
    for (int trial = 0; trial < 5; ++trial) {
      const uint64_t t0 = monotonic_ns();
      sink ^= spin_kernel(ctx, KernelArgs{kUnits, 0, sink + static_cast<uint64_t>(trial)});
      const uint64_t dt = std::max<uint64_t>(1, monotonic_ns() - t0);
      best = std::max(best, static_cast<double>(kUnits) * 1e3 / static_cast<double>(dt));
    }
    // The sink keeps the trials from being optimized away.
    return sink == 0x1234 ? best + 1e-9 : best;
  }();
  return rate;
}

const Workload& cpu_spin_workload() {
  static const Spin w;
  return w;
}

}  // namespace concbench
