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
  // check_interval: the ticker lock's checks between releases (3.1's sys.setcheckinterval).
  explicit GilHooks(Gil& gil, uint64_t check_interval = 3)
      : gil_(gil), check_interval_(check_interval) {}
  void on_break(ExecContext& ctx) override {
    ctx.throw_if_cancelled();
    if (gil_.algorithm() == GilAlgorithm::ticker) [[unlikely]]
      gil_.tick(thread_of(ctx), check_interval_);
    else
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
  uint64_t check_interval_;
};

// A thread's GIL waits and hold into its attribution (attribution.hpp). A wait's wall time is
// the lock's own clock. The CPU an acquisition spends (its futex calls and bookkeeping, which
// the thread's CPU clock already counts) is about the same whether it then sleeps or not, so
// it is estimated per acquisition as the mean its sampled acquisitions measured
// (GilThread::sampled_wait_cpu_ns), capped at that acquisition's wall time, taken out of the
// waits and reported beside as gil_wait_on_cpu. (A share of wall time would not do: one sampled
// 5 ms wait in a few dozen would decide it.)
// Reading the CPU clock on every acquisition would slow each hand-over by two system calls
// (measured: cpu.sha256 under gil_threads at 2 threads, 55% slower per task with the reads
// inside the critical section); one acquisition in 64 costs under 1%. A thread with fewer than
// 64 has no sample and no estimate: its few hand-overs' CPU is negligible. A forced switch's
// wait is a condition-variable wait, off the CPU, and is counted as it is.
inline void add_gil_times(WorkerTimes& t, const GilThread& g) {
  // Per acquisition, the sampled mean but never more than its own wall time (a free lock's
  // acquisition is on the CPU throughout).
  const uint64_t mean = g.samples > 0 ? g.sampled_wait_cpu_ns / g.samples : 0;
  uint64_t waits = 0, on_cpu = 0;
  for (uint64_t w : g.wait_ns) {
    waits += w;
    on_cpu += std::min(w, mean);
  }
  t.gil_wait_ns += waits - on_cpu + g.forced_wait_ns;
  t.gil_wait_on_cpu_ns += on_cpu;
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
