#include "concbench/gil.hpp"

#include <algorithm>
#include <vector>

#include "concbench/clock.hpp"
#include "concbench/exec_context.hpp"

namespace concbench {
namespace {

// A forced-switch wait is untimed in CPython; here it wakes this often to notice cancellation.
constexpr std::chrono::milliseconds kCancelPoll{50};

}  // namespace

const std::vector<GilPolicy>& gil_policies() {
  static const std::vector<GilPolicy> policies = {
      {"3.1", GilAlgorithm::ticker, true, true, false,
       "every instruction but the fast-dispatched ones counts a tick; every check_interval "
       "ticks the holder releases and retakes the lock"},
      {"3.2-3.9", GilAlgorithm::interval, true, true, false,
       "before every instruction but the fast-dispatched ones (LOAD_FAST, LOAD_CONST, "
       "STORE_FAST, POP_TOP and the like)"},
      {"3.10", GilAlgorithm::interval, false, true, false,
       "at frame entry, after calls and on backward jumps"},
      {"3.11-3.12", GilAlgorithm::interval, false, false, false,
       "at RESUME, JUMP_BACKWARD and after calls into C"},
      {"3.13+", GilAlgorithm::interval, false, false, true,
       "as 3.11-3.12, each thread with its own eval breaker: a waiter sets the holder's bit"},
  };
  return policies;
}

const GilPolicy* find_gil_policy(std::string_view name) {
  for (const GilPolicy& p : gil_policies())
    if (name == p.name) return &p;
  return nullptr;
}

Gil::Gil(std::atomic<uint32_t>& breaker, std::chrono::microseconds interval, GilAlgorithm algorithm)
    : breaker_(breaker),
      interval_(std::max(interval, std::chrono::microseconds(1))),
      algorithm_(algorithm) {}

void Gil::tick(GilThread& t, uint64_t check_interval) {
  if (t.ticks > 0) {
    --t.ticks;
    return;
  }
  t.ticks = check_interval > 0 ? check_interval - 1 : 0;
  // "Other threads may run now": release, signal one waiter, and retake at once.
  drop(t, /*force_switch=*/false);
  take(t);
}

uint64_t gil_cpu_sample_cost_ns() {
  // A sample with nothing between its reads: the two clock reads inside it and the CPU-clock
  // reads' own share. The median of a few hundred, measured once per process.
  static const uint64_t cost = [] {
    std::vector<uint64_t> v(301);
    for (uint64_t& x : v) {
      const uint64_t c0 = thread_cpu_ns();
      [[maybe_unused]] const volatile uint64_t a = monotonic_ns();
      [[maybe_unused]] const volatile uint64_t b = monotonic_ns();
      x = thread_cpu_ns() - c0;
    }
    std::nth_element(v.begin(), v.begin() + 150, v.end());
    return v[150];
  }();
  return cost;
}

void Gil::take(GilThread& t) {
  // The thread's own count: one acquisition in kGilCpuSampleEvery, the thread's first (a cold
  // start) not among them.
  const bool sample = t.acquisitions % kGilCpuSampleEvery == kGilCpuSampleEvery - 1;
  const uint64_t c0 = sample ? thread_cpu_ns() : 0;
  const uint64_t t0 = monotonic_ns();
  std::unique_lock lock(mu_);
  const bool waited = locked_;
  bool requested = false;
  const GilOutcome on_entry = waiters_ > 0 ? GilOutcome::slipped_through : GilOutcome::free;
  // 3.1's PyThread_acquire_lock(interpreter_lock, 1): sleep until signalled and the lock is
  // free; no interval and no drop request.
  while (locked_ && algorithm_ == GilAlgorithm::ticker) {
    ++waiters_;
    cond_.wait(lock);
    --waiters_;
    if (locked_ && t.trace) [[unlikely]] {
      const uint64_t now = monotonic_ns();  // woken, and the releaser had it back already
      t.trace->add(TraceKind::gil_lost, now, now);
    }
  }
  while (locked_) {
    const uint64_t saved_switch = switch_number_;
    // A fresh interval per wait. Only a real timeout counts: a spurious or signalled wake-up
    // that finds the lock taken again waits another full interval, as in CPython.
    ++waiters_;
    const bool timed_out = cond_.wait_for(lock, interval_) == std::cv_status::timeout;
    --waiters_;
    if (timed_out && locked_ && switch_number_ == saved_switch) {
      // Relaxed: the holder only needs to see the bit eventually; the hand-over itself is
      // ordered by mu_. The holder's word: the shared one, or under 3.13 its own (the holder
      // is last_holder_ while the lock is held, and mu_ is held here).
      const GilThread* holder = last_holder_.load(std::memory_order_relaxed);
      (holder ? word(*holder) : breaker_).fetch_or(kBreakDropRequest, std::memory_order_relaxed);
      ++t.drop_requests;
      requested = true;
    } else if (!timed_out && locked_ && t.trace) [[unlikely]] {
      const uint64_t now = monotonic_ns();  // signalled, and another thread got it first
      t.trace->add(TraceKind::gil_lost, now, now);
    }
  }
  locked_ = true;
  {
    std::lock_guard sw(switch_mu_);  // last_holder_ changes only with switch_mu_ held too
    if (last_holder_.load(std::memory_order_relaxed) != &t) {
      last_holder_.store(&t, std::memory_order_relaxed);
      ++switch_number_;
      ++t.switches;
    }
    switch_cond_.notify_all();
  }
  // The new holder clears a pending request: whoever wants the lock next must time out anew.
  word(t).fetch_and(~kBreakDropRequest, std::memory_order_relaxed);
  lock.unlock();
  const uint64_t t1 = monotonic_ns();
  if (sample) [[unlikely]] {
    const uint64_t cpu = thread_cpu_ns() - c0;
    static const uint64_t cost = gil_cpu_sample_cost_ns();
    t.sampled_wait_ns += t1 - t0;
    t.sampled_wait_cpu_ns += cpu > cost ? cpu - cost : 0;
    ++t.samples;
  }
  ++t.acquisitions;
  t.wait_ns.push_back(t1 - t0);
  t.wait_total_ns += t1 - t0;
  t.hold_start_ns = t1;
  if (t.trace) [[unlikely]] {
    const GilOutcome how = !waited     ? on_entry
                           : requested ? GilOutcome::after_drop_request
                                       : GilOutcome::signalled_won;
    t.trace->add(TraceKind::gil_wait, t0, t1, 0, static_cast<uint8_t>(how));
  }
}

void Gil::drop(GilThread& t, bool force_switch) {
  const uint64_t held_until = monotonic_ns();
  t.hold_ns += held_until - t.hold_start_ns;
  if (t.trace) [[unlikely]]
    t.trace->add(TraceKind::gil_hold, t.hold_start_ns, held_until);
  {
    std::lock_guard lock(mu_);
    locked_ = false;
    cond_.notify_one();
  }
  if (!force_switch || algorithm_ == GilAlgorithm::ticker) return;
  if ((word(t).load(std::memory_order_relaxed) & kBreakDropRequest) == 0) return;
  std::unique_lock sw(switch_mu_);
  if (last_holder_.load(std::memory_order_relaxed) != &t) return;  // already handed over
  // FORCE_SWITCHING: whoever asked for the lock gets it before we can take it back.
  word(t).fetch_and(~kBreakDropRequest, std::memory_order_relaxed);
  ++t.forced_switches;
  const uint64_t w0 = monotonic_ns();
  while (last_holder_.load(std::memory_order_relaxed) == &t) {
    if (breaker_.load(std::memory_order_relaxed) & kBreakCancel) break;
    switch_cond_.wait_for(sw, kCancelPoll);
  }
  const uint64_t w1 = monotonic_ns();
  t.forced_wait_ns += w1 - w0;
  if (t.trace) [[unlikely]]
    t.trace->add(TraceKind::gil_wait, w0, w1, 0, static_cast<uint8_t>(GilOutcome::forced_switch));
}

void Gil::yield_if_requested(GilThread& t) {
  if ((word(t).load(std::memory_order_relaxed) & kBreakDropRequest) == 0) return;
  drop(t);
  take(t);
}

uint64_t Gil::switch_number() const {
  std::lock_guard lock(mu_);
  return switch_number_;
}

bool Gil::held_by(const GilThread& t) const {
  std::lock_guard lock(mu_);
  return locked_ && last_holder_.load(std::memory_order_relaxed) == &t;
}

}  // namespace concbench
