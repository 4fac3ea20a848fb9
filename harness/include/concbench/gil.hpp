// An emulated CPython GIL with the semantics of CPython 3.11/3.12 (Python/ceval_gil.c),
// implemented from its description:
//
//  take:  while the lock is held, wait on `cond_` for one switch interval; if the wait timed out
//         and no switch happened meanwhile (same switch number), set the drop request. Each wait
//         is a fresh interval. On acquiring: bump the switch number if the holder changed,
//         signal `switch_cond_`, and clear any pending drop request (the new holder clears it,
//         so other waiters must time out again).
//  drop:  release and signal one waiter; then, if a drop request was pending and nobody has
//         taken the lock yet, wait until another thread has (FORCE_SWITCHING). This applies to
//         voluntary releases (around IO and native code) too.
//  check: at an eval-breaker check with the drop request set: drop, then take.
//
// The drop request is a bit of the model's breaker word (exec_context.hpp), so the holder's
// checkpoint stays one relaxed load. Under 3.13's per-thread eval breaker each thread has a word
// of its own (GilThread::breaker): a waiter sets the bit in the current holder's word, and a
// holder clears its own; with one interpreter that behaves as the shared word does.
//
// CPython 3.1's lock (GilAlgorithm::ticker) is another algorithm: no interval, no drop request,
// no forced switch. The holder releases and at once retakes the lock every check_interval
// checks (sys.setcheckinterval, 100), and a waiter sleeps until it is signalled. A woken waiter
// usually finds the lock retaken: the convoy that made two threads slower than one on two
// cores (Beazley 2009), and the reason 3.2 replaced the lock.
//
// Lock order: mu_ before switch_mu_ (take holds both while it publishes the new holder; drop
// holds them one after the other, never together). last_holder_ is written only with both held,
// so either mutex suffices to read it consistently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "concbench/trace_buffer.hpp"

namespace concbench {

// How the lock hands over (see the top).
enum class GilAlgorithm { ticker, interval };

// A CPython version range's GIL, as the emulation reproduces it: the lock's algorithm, where
// the eval breaker is looked at, and whose breaker word a drop request goes to.
struct GilPolicy {
  const char* name;         // as --gil-policy takes it
  GilAlgorithm algorithm;   // ticker: 3.1; interval: 3.2 and later
  bool per_instruction;     // a check between a unit's instructions (3.9 and earlier)
  bool after_calls;         // a check when a Python-level call returns (3.10 and earlier)
  bool per_thread_breaker;  // 3.13+: the drop request goes to the holder's own word
  const char* checks;       // where that version checks, in words
};
// 3.1, 3.2-3.9, 3.10, 3.11-3.12, 3.13+, oldest first.
const std::vector<GilPolicy>& gil_policies();
// The policy of that name, or nullptr.
const GilPolicy* find_gil_policy(std::string_view name);
inline constexpr const char* kDefaultGilPolicy = "3.11-3.12";

// One thread's view of the GIL. Written only by its thread; read by others after it finished.
struct GilThread {
  uint64_t acquisitions = 0;
  uint64_t switches = 0;         // acquisitions that changed the holder
  uint64_t drop_requests = 0;    // requests this thread set after a timed-out wait
  uint64_t forced_switches = 0;  // drops that waited until another thread took the lock
  uint64_t hold_ns = 0;
  uint64_t forced_wait_ns = 0;    // in drops, waiting for another thread to take the lock
  uint64_t wait_total_ns = 0;     // the wait_ns summed, kept as they are added
  std::vector<uint64_t> wait_ns;  // one per acquisition (0 when the lock was free)
  uint64_t hold_start_ns = 0;
  TraceBuffer* trace = nullptr;  // --trace: waits (with how each ended) and holds
  // The breaker word this thread's checks read: its own under a per-thread breaker (3.13+),
  // nullptr for the GIL's shared word. Set before the thread first takes the lock.
  std::atomic<uint32_t>* breaker = nullptr;
  uint64_t ticks = 0;  // the ticker lock's countdown to its next release (3.1)
  // One acquisition in kGilCpuSampleEvery also reads the thread's CPU clock, before it starts
  // and after it ends (outside the lock's critical section): the CPU an acquisition spends (its
  // futex calls, its bookkeeping), whose mean scales to all of them (gil_hooks.hpp).
  uint64_t sampled_wait_ns = 0;
  uint64_t sampled_wait_cpu_ns = 0;  // less the reads' own cost (gil_cpu_sample_cost_ns)
  uint64_t samples = 0;
};

// Sampling every 64th acquisition costs two CPU-clock reads (a system call each where the
// kernel has no vDSO path for thread clocks) per 64: under 1% of a contended hand-over.
inline constexpr uint64_t kGilCpuSampleEvery = 64;
// What the two CPU-clock reads of a sample add to the CPU they measure, measured once.
uint64_t gil_cpu_sample_cost_ns();

class Gil {
 public:
  // `breaker` is the model's breaker word: this GIL sets and clears kBreakDropRequest in it, and
  // gives up a forced-switch wait when kBreakCancel appears.
  Gil(std::atomic<uint32_t>& breaker, std::chrono::microseconds interval,
      GilAlgorithm algorithm = GilAlgorithm::interval);

  void take(GilThread& t);
  // `force_switch` false skips the FORCE_SWITCHING wait: for a thread that exits and so can
  // never be handed the lock back.
  void drop(GilThread& t, bool force_switch = true);
  // The eval breaker's slow path: if a drop is requested, let another thread run.
  void yield_if_requested(GilThread& t);
  // The ticker lock's check (3.1): every `check_interval` calls, release and retake.
  void tick(GilThread& t, uint64_t check_interval);
  GilAlgorithm algorithm() const { return algorithm_; }

  uint64_t switch_number() const;
  bool held_by(const GilThread& t) const;
  std::chrono::microseconds interval() const { return interval_; }

 private:
  std::atomic<uint32_t>& word(const GilThread& t) const {
    return t.breaker ? *t.breaker : breaker_;
  }

  std::atomic<uint32_t>& breaker_;
  const std::chrono::microseconds interval_;
  const GilAlgorithm algorithm_;

  mutable std::mutex mu_;
  std::condition_variable cond_;  // signalled on every release
  bool locked_ = false;
  int waiters_ = 0;  // threads inside take()'s wait, for the trace's "slipped through"
  uint64_t switch_number_ = 0;
  std::atomic<const GilThread*> last_holder_{nullptr};

  std::mutex switch_mu_;
  std::condition_variable switch_cond_;  // signalled on every acquisition
};

}  // namespace concbench
