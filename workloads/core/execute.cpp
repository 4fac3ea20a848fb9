#include <stdexcept>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"

namespace concbench {

// Kernels live beside their workloads (workloads/<name>/); the table gives them stable ids.
uint64_t spin_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t pidigits_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t spin_until_stop_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t counter_race_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t sha256_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t stream_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t false_sharing_kernel(ExecContext& ctx, const KernelArgs& a);

namespace {

uint64_t fault_kernel(ExecContext& ctx, const KernelArgs& a) {
  ctx.checkpoint();
  if (a.arg == kFaultThrow) throw std::runtime_error("injected fault");
  return 0xbadc0ffee0ddf00dULL;  // folded into the checksum, so the task cannot verify
}

constexpr KernelInfo kKernels[] = {
    {"spin", &spin_kernel},
    {"pidigits", &pidigits_kernel},
    {"fault", &fault_kernel},
    {"spin_until_stop", &spin_until_stop_kernel},
    {"counter_race", &counter_race_kernel},
    {"sha256", &sha256_kernel},
    {"stream", &stream_kernel},
    {"false_sharing", &false_sharing_kernel},
};
}  // namespace

std::span<const KernelInfo> kernel_table() {
  return kKernels;
}

KernelId kernel_id(std::string_view name) {
  for (size_t i = 0; i < std::size(kKernels); ++i)
    if (kKernels[i].name == name) return static_cast<KernelId>(i);
  throw std::invalid_argument("unknown kernel " + std::string(name));
}

const char* step_kind_name(StepKind k) {
  switch (k) {
    case StepKind::cpu:
      return "cpu";
    case StepKind::sleep:
      return "sleep";
    case StepKind::pipe_echo:
      return "pipe_echo";
    case StepKind::file_read:
      return "file_read";
    case StepKind::tcp_echo:
      return "tcp_echo";
    case StepKind::echo_respond:
      return "echo_respond";
  }
  return "?";
}

uint64_t step_seed(uint64_t task_seed, size_t step_index) {
  return mix64(task_seed + (step_index + 1) * 0x9e3779b97f4a7c15ULL);
}

uint64_t task_checksum_start(uint64_t seed, std::span<const std::byte> payload) {
  return hash_bytes(payload, seed);
}

uint64_t task_checksum_start(const Task& task) {
  return task_checksum_start(task.seed, task.payload);
}

uint64_t run_cpu_step(const Step& s, uint64_t task_seed, size_t step_index, ExecContext& ctx) {
  if (s.kernel >= std::size(kKernels)) throw std::invalid_argument("bad kernel id");
  const KernelArgs args{s.units, s.arg, step_seed(task_seed, step_index)};
  const KernelFn fn = kKernels[s.kernel].fn;
  if (s.native) return ctx.blocking([&] { return fn(ctx, args); });
  return fn(ctx, args);
}

uint64_t predict_io_step(const Step& s, uint64_t task_seed, size_t step_index) {
  const uint64_t seed = step_seed(task_seed, step_index);
  switch (s.kind) {
    case StepKind::sleep:
      return s.duration_ns;
    case StepKind::pipe_echo:
    case StepKind::tcp_echo:
    case StepKind::echo_respond: {
      std::vector<std::byte> msg(s.bytes);
      uint64_t h = 0;
      for (uint64_t r = 0; r < s.units; ++r) {
        fill_bytes(msg, echo_message_seed(seed, r));
        h = fold(h, hash_bytes(msg));
      }
      return h;
    }
    case StepKind::file_read: {
      std::vector<std::byte> data(s.bytes);
      fill_bytes(data, scratch_file_seed());
      return hash_bytes(data);
    }
    case StepKind::cpu:
      break;
  }
  throw std::logic_error("predict_io_step: not an IO step");
}

TaskOutcome execute_steps(uint64_t seed, std::span<const Step> steps,
                          std::span<const std::byte> payload, ExecContext& ctx, uint64_t nonce) {
  uint64_t h = task_checksum_start(seed, payload);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    uint64_t v;
    if (s.kind == StepKind::cpu) {
      v = run_cpu_step(s, seed, i, ctx);
    } else {
      if (!ctx.has_io()) throw std::logic_error("IO step without an IoEnv");
      v = run_blocking_io_step(s, seed, i, ctx);
    }
    h = fold(h, v);
  }
  return TaskOutcome{seal(h, nonce)};
}

TaskOutcome execute_task(const Task& task, ExecContext& ctx, uint64_t nonce) {
  return execute_steps(task.seed, task.steps, task.payload, ctx, nonce);
}

}  // namespace concbench
