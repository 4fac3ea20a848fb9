// cpu.false_sharing: every worker increments its own counter, `units` times per task. With
// padded=0 the counters are adjacent words of one cache line, so each increment steals the line
// from the other cores (false sharing); with padded=1 each counter has a line of its own. The
// work is identical; only the layout differs.
#include <atomic>
#include <cstddef>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr size_t kSlots = 64;  // workers beyond this share slots (atomically, so still correct)
constexpr size_t kLine = 64;

struct alignas(kLine) PaddedSlot {
  std::atomic<uint64_t> v{0};
};
static_assert(sizeof(PaddedSlot) == kLine, "one counter per cache line");

struct alignas(kLine) PackedSlots {
  std::atomic<uint64_t> v[kSlots];
};
static_assert(alignof(PackedSlots) == kLine && sizeof(std::atomic<uint64_t>) == 8,
              "eight counters per cache line");

// Process-wide: only differences between values a worker's own increments returned are read
// back (see the kernel), so cells need not reset them.
PaddedSlot g_padded[kSlots];
PackedSlots g_packed;

class FalseSharing final : public Workload {
 public:
  std::string_view name() const override { return "cpu.false_sharing"; }
  std::string_view description() const override {
    return "each worker increments its own counter: adjacent on one cache line, or padded=1";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(16, 0);
    p.push_back(ParamSpec::integer("units", "increments per task", 2'000'000, 1, 1'000'000'000));
    p.push_back(ParamSpec::integer("padded", "1: one cache line per counter", 0, 0, 1));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double n = static_cast<double>(p.get_int("units")) * static_cast<double>(tasks_run);
    return {{"increments_per_s", wall_ns ? n * 1e9 / static_cast<double>(wall_ns) : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("false_sharing");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    s.arg = static_cast<uint64_t>(p.get_int("padded"));
    return one_step_tasks(p, seed, s,
                          [&](const Task& t) { return fold(step_seed(t.seed, 0), s.units); });
  }
};

}  // namespace

uint64_t false_sharing_kernel(ExecContext& ctx, const KernelArgs& a) {
  const size_t slot = static_cast<size_t>(ctx.worker()) % kSlots;
  std::atomic<uint64_t>& c = a.arg ? g_padded[slot].v : g_packed.v[slot];
  // The checksum counts what the shared counter saw, not what this loop meant to do: the values
  // the first and last increments returned must lie at least units - 1 apart (exactly, when the
  // worker has the slot to itself; more when workers beyond kSlots share it).
  uint64_t first = 0, last = 0;
  for (uint64_t u = 0; u < a.units; ++u) {
    // Relaxed: only the cache line's movement matters, not ordering with anything else.
    const uint64_t before = c.fetch_add(1, std::memory_order_relaxed);
    if (u == 0) first = before;
    last = before;
    if ((u & 1023) == 1023) ctx.checkpoint();  // a unit is ~ns; check every 1024 of them
  }
  const uint64_t seen = a.units ? last - first + 1 : 0;
  return fold(a.seed, seen >= a.units ? a.units : seen);
}

const Workload& cpu_false_sharing_workload() {
  static const FalseSharing w;
  return w;
}

}  // namespace concbench
