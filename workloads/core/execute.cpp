#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/params.hpp"

namespace concbench {

// Kernels live beside their workloads (workloads/<name>/); the table gives them stable ids.
uint64_t spin_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t pidigits_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t spin_until_stop_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t counter_race_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t sha256_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t stream_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t false_sharing_kernel(ExecContext& ctx, const KernelArgs& a);
uint64_t refcount_kernel(ExecContext& ctx, const KernelArgs& a);

namespace {

uint64_t fault_kernel(ExecContext& ctx, const KernelArgs& a) {
  ctx.checkpoint();
  if (a.arg == kFaultThrow) throw std::runtime_error("injected fault");
  return 0xbadc0ffee0ddf00dULL;  // folded into the checksum, so the task cannot verify
}

constexpr KernelInfo kBuiltinKernels[] = {
    {"spin", &spin_kernel},
    {"pidigits", &pidigits_kernel},
    {"fault", &fault_kernel},
    {"spin_until_stop", &spin_until_stop_kernel},
    {"counter_race", &counter_race_kernel},
    {"sha256", &sha256_kernel},
    {"stream", &stream_kernel},
    {"false_sharing", &false_sharing_kernel},
    {"refcount", &refcount_kernel},
};
constexpr size_t kBuiltinCount = std::size(kBuiltinKernels);
static_assert(kMaxKernels - 1 <= UINT16_MAX, "KernelId must index the whole table");

// A fixed array rather than a vector, so a registration never moves an entry a running task may
// be reading; constant-initialized, so the built-ins are there before any static constructor.
constinit std::array<KernelInfo, kMaxKernels> g_kernels = [] {
  std::array<KernelInfo, kMaxKernels> t{};
  for (size_t i = 0; i < kBuiltinCount; ++i) t[i] = kBuiltinKernels[i];
  return t;
}();
// Entries [0, g_kernel_count) are complete. Written only by register_kernel, under the mutex.
std::atomic<size_t> g_kernel_count{kBuiltinCount};

struct KernelRegistration {
  std::mutex mu;  // serializes writers; readers go by g_kernel_count alone
  // The names registered kernels' string_views point into; never freed, as the table is not.
  std::vector<std::unique_ptr<const std::string>> names;
};
KernelRegistration& kernel_registration() {
  static KernelRegistration r;
  return r;
}

}  // namespace

// Acquire here and in run_cpu_step: a reader that sees count n also sees entries [0, n) as
// register_kernel wrote them before its release store.
std::span<const KernelInfo> kernel_table() {
  return {g_kernels.data(), g_kernel_count.load(std::memory_order_acquire)};
}

KernelId kernel_id(std::string_view name) {
  const std::span<const KernelInfo> table = kernel_table();
  for (size_t i = 0; i < table.size(); ++i)
    if (table[i].name == name) return static_cast<KernelId>(i);
  throw std::invalid_argument("unknown kernel " + std::string(name));
}

KernelId register_kernel(std::string name, KernelFn fn) {
  if (name.empty()) throw UsageError("a kernel needs a name");
  if (fn == nullptr) throw UsageError("kernel '" + name + "' has no function");
  KernelRegistration& r = kernel_registration();
  std::lock_guard lock(r.mu);
  // Relaxed: only writers change the count, and they hold the mutex.
  const size_t n = g_kernel_count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i)
    if (g_kernels[i].name == name) throw UsageError("kernel '" + name + "' is already registered");
  if (n == kMaxKernels)
    throw UsageError("kernel '" + name + "': the kernel table is full (" +
                     std::to_string(kMaxKernels) + " kernels)");
  r.names.push_back(std::make_unique<const std::string>(std::move(name)));
  g_kernels[n] = KernelInfo{*r.names.back(), fn};
  // Release: publishes g_kernels[n] to every reader that acquires the new count.
  g_kernel_count.store(n + 1, std::memory_order_release);
  return static_cast<KernelId>(n);
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
  // Acquire (see kernel_table): one plain load on x86, as cheap as the constant it replaced.
  if (s.kernel >= g_kernel_count.load(std::memory_order_acquire))
    throw std::invalid_argument("bad kernel id " + std::to_string(s.kernel) +
                                " (a plugin's kernel in a process that did not load the plugin?)");
  const KernelArgs args{s.units, s.arg, step_seed(task_seed, step_index)};
  const KernelFn fn = g_kernels[s.kernel].fn;
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
