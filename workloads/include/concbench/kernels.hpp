// CPU kernels and the step executor. A kernel performs `units` units of work, calling
// ctx.checkpoint() once per unit, and returns a value that depends on all of it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/task.hpp"

namespace concbench {

// Arguments of the "fault" kernel, which exists to prove that failures are caught.
inline constexpr uint64_t kFaultThrow = 0;
inline constexpr uint64_t kFaultWrongResult = 1;

struct KernelArgs {
  uint64_t units = 0;
  uint64_t arg = 0;
  uint64_t seed = 0;
};

using KernelFn = uint64_t (*)(ExecContext&, const KernelArgs&);

struct KernelInfo {
  std::string_view name;
  KernelFn fn;
};

// Every kernel, indexed by KernelId: the built-in ones, then those added with register_kernel in
// the order they were added. The table is the same in every process that registered the same
// kernels in the same order (a spawned worker loads the parent's plugins in the parent's order),
// so a KernelId can cross a process boundary.
std::span<const KernelInfo> kernel_table();
// Throws std::invalid_argument for an unknown name.
KernelId kernel_id(std::string_view name);
// Adds a kernel defined outside workloads/ (a plugin's) and returns its id. Call it before a run
// starts: a run reads the table without a lock. Throws UsageError for an empty or taken name, or
// when the table (kMaxKernels) is full.
inline constexpr size_t kMaxKernels = 256;
KernelId register_kernel(std::string name, KernelFn fn);

// Runs every step of `task` in `ctx`: CPU steps inline (native ones inside ctx.blocking()), IO
// steps blocking inside ctx.blocking() (echo_respond releases around each read and write only).
// Throws TaskCancelled when the model is cancelled, and whatever a step throws on failure.
// The checksum is sealed with `nonce` (checksum.hpp's seal): pass the batch's item_nonce(k).
TaskOutcome execute_task(const Task& task, ExecContext& ctx, uint64_t nonce);
// The same for a task whose payload lives elsewhere (a process pool's shared memory or receive
// buffer): no copy into a Task is needed.
TaskOutcome execute_steps(uint64_t seed, std::span<const Step> steps,
                          std::span<const std::byte> payload, ExecContext& ctx, uint64_t nonce);

// One step's contribution to the checksum; exposed for models that run steps themselves (an
// event loop awaits IO steps rather than blocking on them).
uint64_t run_cpu_step(const Step& s, uint64_t task_seed, size_t step_index, ExecContext& ctx);
uint64_t run_blocking_io_step(const Step& s, uint64_t task_seed, size_t step_index,
                              ExecContext& ctx);
// The seed of the message a step sends; the checksum of an echo step is predictable from it.
uint64_t step_seed(uint64_t task_seed, size_t step_index);
// cpu.spin's state after `units` units from `seed` (LCG jump-ahead, no looping).
uint64_t spin_state_after(uint64_t seed, uint64_t units);
// cpu.spin units per microsecond on this machine: measured once per process (the fastest of
// several short trials, so a momentarily busy core does not skew it); thread-safe.
double spin_units_per_us();
// LCG steps that take about `ns` of CPU here (from spin_units_per_us, measured on first use).
uint64_t lcg_steps_for_ns(uint64_t ns);
// `steps` steps of cpu.spin's generator from `x`: work the compiler cannot drop, for code that
// stands in for Python-level work (an echo round's), which returns the state to fold or sink.
uint64_t burn_lcg(uint64_t x, uint64_t steps);
// Keeps a value (and the work that made it) from being optimized away, without a store.
inline void sink_value(uint64_t v) {
  asm volatile("" : : "r"(v) : "memory");
}
// One step of cpu.spin's generator, and its jump-ahead by `steps` steps: the building blocks of
// "interpreter work" that kernels can both do and predict.
inline constexpr uint64_t lcg_step(uint64_t x) {
  return x * 6364136223846793005ULL + 1442695040888963407ULL;
}
uint64_t lcg_advance(uint64_t x, uint64_t steps);
// What cpu.sha256's kernel returns for (seed, units, buffer_bytes), found by hashing the same
// chain outside any model: its prediction, which costs as much CPU as the kernel.
uint64_t predict_sha256(uint64_t seed, uint64_t units, uint64_t buffer_bytes);
// What spin_until_stop returns when the units it did check out against spin_state_after.
inline constexpr uint64_t kSpinOkToken = 0x5350494e2d4f4b21ULL;

// echo_respond's per-round Python-level works, resolved against the emulated interpreter's
// costs (kEchoWorkInterpreter) and converted to LCG steps for burn_lcg. Resolve it before the
// round trips start: the first conversion measures the spin rate.
struct EchoWork {
  uint64_t responder_ns = 0, client_ns = 0;
  uint64_t responder_steps = 0, client_steps = 0;
};
EchoWork echo_work(const Step& s, const InterpreterCost& cost);
// echo_respond's ping pace (latency.paced_ping), 0 for back-to-back round trips.
inline uint64_t echo_pace_ns(const Step& s) {
  return uint64_t{s.kernel} * 1'000'000ULL;
}
// One-way delays from the client's send times and the responder's receive times, pairwise.
std::vector<uint64_t> one_way_delays(const std::vector<uint64_t>& sent,
                                     const std::vector<uint64_t>& received);

// The seed of round `round`'s message in an echo step.
uint64_t echo_message_seed(uint64_t step_seed, uint64_t round);
// What an IO step returns when it worked, computed without doing the IO.
uint64_t predict_io_step(const Step& s, uint64_t task_seed, size_t step_index);
// Start and final values of a task checksum: payload hash folded with each step's result.
uint64_t task_checksum_start(const Task& task);
uint64_t task_checksum_start(uint64_t seed, std::span<const std::byte> payload);

}  // namespace concbench
