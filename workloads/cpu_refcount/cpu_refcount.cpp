// cpu.refcount: what free threading costs a single thread, and how it scales with sharing. Every
// unit takes and drops 1000 references to an object (Py_INCREF / Py_DECREF pairs), counted the
// three ways PEP 703 discusses:
//   plain   a non-atomic read-modify-write, what a GIL build does (safe only behind a lock)
//   atomic  a locked read-modify-write on every change (the naive free-threaded design)
//   biased  the owner thread counts plainly in its own field, every other thread atomically in
//           a shared one (PEP 703's biased reference counting; CPython 3.13t and 3.14t)
// sharing=private gives every task an object of its own, owned by the thread running it (the
// common case: most objects never leave their thread); sharing=shared makes every task of this
// process count on one object, owned by the thread that first touched it, so the others take
// the slow path and contend for its cache line.
//
// `plain` on a shared object loses updates when threads really run at once; that is the race
// free threading exists to avoid, and it is reported (lost_refs), not folded into the checksum.
// The checksum covers the units done (an LCG step per unit, in closed form for the prediction)
// and, for private objects, that every reference taken was dropped.
#include <atomic>
#include <cstdint>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr uint64_t kRefsPerUnit = 1000;
enum Mode : uint64_t { kPlain = 0, kAtomic = 1, kBiased = 2 };
constexpr uint64_t kShared = 4;  // arg bit: count on the process's shared object

// An object header as PEP 703 lays it out: the owner's id, its local count, the shared count.
// One cache line, so a shared object's contention is the object's alone.
struct alignas(64) Object {
  std::atomic<uint64_t> owner{0};
  std::atomic<uint64_t> local{0};
  std::atomic<int64_t> shared{0};
};
static_assert(sizeof(Object) == 64, "one object, one cache line");

// A thread's id for the owner test, as _Py_ThreadId() reads it: one TLS load.
uint64_t thread_id() {
  static std::atomic<uint64_t> next{1};
  thread_local const uint64_t id = next.fetch_add(1, std::memory_order_relaxed);
  return id;
}

Object& shared_object() {
  static Object o;
  return o;
}

// Relaxed throughout: a reference count orders nothing by itself (CPython's decref to zero,
// which frees, is the one that needs ordering, and this object is never freed). A relaxed load
// and store is a plain move; the compiler may not merge or drop it, so each change is done.
inline void incref(Object& o, Mode mode, uint64_t me) {
  switch (mode) {
    case kPlain:
      o.local.store(o.local.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      break;
    case kAtomic:
      o.shared.fetch_add(1, std::memory_order_relaxed);
      break;
    case kBiased:
      if (o.owner.load(std::memory_order_relaxed) == me)
        o.local.store(o.local.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      else
        o.shared.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

inline void decref(Object& o, Mode mode, uint64_t me) {
  switch (mode) {
    case kPlain:
      o.local.store(o.local.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      break;
    case kAtomic:
      o.shared.fetch_sub(1, std::memory_order_relaxed);
      break;
    case kBiased:
      if (o.owner.load(std::memory_order_relaxed) == me)
        o.local.store(o.local.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      else
        o.shared.fetch_sub(1, std::memory_order_relaxed);
      break;
  }
}

Mode mode_of(const std::string& m) {
  return m == "plain" ? kPlain : m == "atomic" ? kAtomic : kBiased;
}

class Refcount final : public Workload {
 public:
  std::string_view name() const override { return "cpu.refcount"; }
  std::string_view description() const override {
    return "incref/decref pairs counted plain, atomic or biased (PEP 703), on private or shared "
           "objects";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(32, 0);
    p.push_back(ParamSpec::integer("units", "units per task (1000 incref/decref pairs each)", 100,
                                   1, 1'000'000'000));
    p.push_back(ParamSpec::choice("mode", "how a reference is counted", "biased",
                                  {"plain", "atomic", "biased"}));
    p.push_back(ParamSpec::choice("sharing", "one object per task, or one per process", "private",
                                  {"private", "shared"}));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double refs = 2.0 * static_cast<double>(kRefsPerUnit) *
                        static_cast<double>(p.get_int("units")) * static_cast<double>(tasks_run);
    const double wall = static_cast<double>(wall_ns);
    return {{"refs", refs},
            {"ns_per_ref", refs > 0 ? wall / refs : 0.0},
            {"refs_per_s", wall > 0 ? refs * 1e9 / wall : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("refcount");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    s.arg = mode_of(p.get("mode")) | (p.get("sharing") == "shared" ? kShared : 0);
    return one_step_tasks(
        p, seed, s, [&](const Task& t) { return lcg_advance(step_seed(t.seed, 0), s.units); });
  }
};

}  // namespace

uint64_t refcount_kernel(ExecContext& ctx, const KernelArgs& a) {
  const auto mode = static_cast<Mode>(a.arg & 3);
  const uint64_t me = thread_id();
  Object mine;
  Object& o = (a.arg & kShared) ? shared_object() : mine;
  uint64_t expected_owner = 0;
  // The first thread to count on an object owns it (an object is owned by its creator).
  o.owner.compare_exchange_strong(expected_owner, me, std::memory_order_relaxed);
  uint64_t state = a.seed;
  for (uint64_t u = 0; u < a.units; ++u) {
    for (uint64_t i = 0; i < kRefsPerUnit; ++i) {
      incref(o, mode, me);
      decref(o, mode, me);
    }
    state = lcg_step(state);
    ctx.checkpoint();
  }
  // A private object's references must all be dropped; a wrong count cannot verify.
  if (!(a.arg & kShared) && (mine.local.load() != 0 || mine.shared.load() != 0)) return ~state;
  return state;
}

const Workload& cpu_refcount_workload() {
  static const Refcount w;
  return w;
}

}  // namespace concbench
