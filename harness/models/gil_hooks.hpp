// The emulated GIL as an ExecContext sees it (gil.hpp), shared by the models that run Python-level
// work behind one: gil_threads (one GIL for all threads), interpreters (one GIL per interpreter)
// and process_threads' workers (one GIL per process). Internal to harness/models.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/gil.hpp"
#include "concbench/stats.hpp"

namespace concbench::detail {

// Checkpoints yield the GIL when another thread asked for it; IO and native sections release it.
// The context's model_data() is the thread's GilThread.
class GilHooks final : public ExecHooks {
 public:
  explicit GilHooks(Gil& gil) : gil_(gil) {}
  void on_break(ExecContext& ctx) override {
    ctx.throw_if_cancelled();
    gil_.yield_if_requested(thread_of(ctx));
  }
  void release(ExecContext& ctx) override { gil_.drop(thread_of(ctx)); }
  void reacquire(ExecContext& ctx) override { gil_.take(thread_of(ctx)); }
  uint64_t lock_wait_ns(ExecContext& ctx) override {
    const GilThread& t = thread_of(ctx);
    return t.wait_total_ns + t.forced_wait_ns;
  }

 private:
  static GilThread& thread_of(ExecContext& ctx) {
    return *static_cast<GilThread*>(ctx.model_data());
  }
  Gil& gil_;
};

// A thread's GIL waits and hold into its attribution (attribution.hpp).
// Its waits by the lock's own clock. The CPU a contended hand-over costs (its futex calls) is in
// both the wait and the CPU part: reading the CPU clock inside the lock's critical section to
// take it out would slow every hand-over (measured: cpu.sha256 under gil_threads at 2 threads,
// 55% slower per task), so where hand-overs are many and short the overlap shows as a negative
// unattributed share instead.
inline void add_gil_times(WorkerTimes& t, const GilThread& g) {
  for (uint64_t w : g.wait_ns) t.gil_wait_ns += w;
  t.gil_wait_ns += g.forced_wait_ns;
  t.gil_hold_ns += g.hold_ns;
}

// The gil_* metrics over a set of threads (one GIL's, or several GILs' summed).
inline nlohmann::json gil_metrics(const std::vector<GilThread>& threads) {
  uint64_t acq = 0, sw = 0, req = 0, forced = 0, hold = 0, wait_total = 0;
  std::vector<uint64_t> waits;
  for (const GilThread& t : threads) {
    acq += t.acquisitions;
    sw += t.switches;
    req += t.drop_requests;
    forced += t.forced_switches;
    hold += t.hold_ns;
    for (uint64_t w : t.wait_ns) wait_total += w;
    waits.insert(waits.end(), t.wait_ns.begin(), t.wait_ns.end());
  }
  const LatencySummary ws = latency_summary(std::move(waits));
  return {
      {"gil_acquisitions", acq},
      {"gil_switches", sw},
      {"gil_drop_requests", req},
      {"gil_forced_switches", forced},
      {"gil_wait_ns", {{"total", wait_total}, {"p50", ws.p50}, {"p99", ws.p99}, {"max", ws.max}}},
      {"gil_hold_ns", hold}};
}

}  // namespace concbench::detail
