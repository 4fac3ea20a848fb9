// cpu.stream: a memory-bound sweep. Each unit reads every 64-bit word of a buffer of
// buffer_bytes and sums it, so with buffers larger than the caches a task's time is set by
// memory bandwidth and by where its memory lives. The buffer belongs to the worker (IoEnv keeps
// one per worker for the run): allocated and first touched by the worker's thread, so a pinned
// worker's pages land on its own NUMA node, and reused by every task that worker runs.
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

// The buffer's contents: word i is mix64(i), so a sweep's sum depends only on the size.
uint64_t sweep_sum(uint64_t words) {
  static std::mutex mu;
  static std::map<uint64_t, uint64_t> cache;  // prediction is one pass per size, not per task
  std::lock_guard lock(mu);
  auto it = cache.find(words);
  if (it != cache.end()) return it->second;
  uint64_t s = 0;
  for (uint64_t i = 0; i < words; ++i) s += mix64(i);
  cache[words] = s;
  return s;
}

class Stream final : public Workload {
 public:
  std::string_view name() const override { return "cpu.stream"; }
  std::string_view description() const override {
    return "memory-bound sweeps over a per-worker buffer of buffer_bytes; reports bytes/s";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(16, 0);
    p.push_back(ParamSpec::integer("units", "sweeps per task", 4, 1, 1'000'000'000));
    p.push_back(ParamSpec::integer("buffer_bytes", "bytes swept per unit (a multiple of 8)",
                                   32LL << 20, 8, 64LL << 30));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double bytes = static_cast<double>(p.get_int("units")) *
                         static_cast<double>(p.get_int("buffer_bytes") / 8 * 8) *
                         static_cast<double>(tasks_run);
    return {{"bytes_per_s", wall_ns ? bytes * 1e9 / static_cast<double>(wall_ns) : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("stream");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    s.arg = static_cast<uint64_t>(p.get_int("buffer_bytes")) / 8;
    const uint64_t per_sweep = sweep_sum(s.arg);
    return one_step_tasks(
        p, seed, s, [&](const Task& t) { return fold(step_seed(t.seed, 0), per_sweep * s.units); });
  }
};

}  // namespace

uint64_t stream_kernel(ExecContext& ctx, const KernelArgs& a) {
  // Sized and first touched here, on the worker's own thread.
  std::vector<uint64_t>& buf = ctx.io().worker_buffer(ctx.worker());
  if (buf.size() != a.arg) {
    buf.assign(a.arg, 0);
    for (uint64_t i = 0; i < a.arg; ++i) buf[i] = mix64(i);
  }
  uint64_t total = 0;
  for (uint64_t u = 0; u < a.units; ++u) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent chains: bandwidth, not add latency
    const uint64_t* p = buf.data();
    const uint64_t n = a.arg;
    uint64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    for (; i < n; ++i) s0 += p[i];
    total += s0 + s1 + s2 + s3;
    // Each sweep must really read memory: forbid the compiler to reuse the previous sum.
    asm volatile("" ::: "memory");
    ctx.checkpoint();
  }
  return fold(a.seed, total);
}

const Workload& cpu_stream_workload() {
  static const Stream w;
  return w;
}

}  // namespace concbench
