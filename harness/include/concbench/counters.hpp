// Per-thread event counters: perf_event_open groups plus getrusage(RUSAGE_THREAD).
//
// Why per thread: a counter opened with `inherit` only folds a child thread's counts into the
// parent when the child exits, so a persistent worker would be invisible until teardown. Every
// worker therefore opens a ThreadCounters of its own, and the model sums the deltas.
//
// An event the machine cannot count is *unavailable* (std::nullopt), never 0; the reason is
// kept so the report can say why (see CounterProbe). All Linux-specific code lives in
// counters_linux.cpp; counters_stub.cpp is the "not supported" implementation CMake picks
// elsewhere.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace concbench {

enum class Counter : int {
  context_switches = 0,          // perf software event, all switches of the thread
  voluntary_context_switches,    // getrusage ru_nvcsw: the thread blocked
  involuntary_context_switches,  // getrusage ru_nivcsw: the thread was preempted
  cpu_migrations,                // perf software event
  page_faults,                   // perf software event
  task_clock_ns,                 // perf software event: on-CPU time of the thread
  cycles,                        // hardware events from here on
  instructions,
  cache_references,
  cache_misses,
  l1d_load_misses,
  llc_load_misses,
  kCount
};

inline constexpr int kCounterCount = static_cast<int>(Counter::kCount);

// The report's name for each counter, e.g. "cache_misses".
std::string_view counter_name(Counter c);
bool is_hardware_counter(Counter c);

// One perf event as the kernel reports it: what it counted while it was on the PMU
// (`value`), and for how long it was enabled and actually running. When the kernel multiplexes
// more hardware events than the PMU has counters, running < enabled and the true count is
// estimated as value * enabled / running.
struct RawCount {
  uint64_t value = 0, enabled = 0, running = 0;
};

// The count between two raw reads of one event. A delta of scaled cumulative values is wrong
// whenever the running/enabled ratio changes between the reads (it can even come out negative),
// so the scaling is applied to the interval itself: dv * de / dr.
struct ScaledDelta {
  enum class Status : uint8_t {
    ok,            // `value` holds the interval's count (estimated when `multiplexed`)
    not_counted,   // enabled during the interval but never on the PMU: nothing to scale (dr == 0)
    inconsistent,  // `after` is not a later read of the same event than `before`
  };
  Status status = Status::ok;
  uint64_t value = 0;
  bool multiplexed = false;  // running < enabled over the interval
};
// Pure: no syscalls, testable with synthetic reads.
ScaledDelta scale_delta(const RawCount& before, const RawCount& after);
// Why a delta with that status has no value (empty for ok).
std::string_view scale_delta_reason(ScaledDelta::Status s);

// A set of counter values; an entry without a value is unavailable on this machine.
//
// Two kinds of values travel in it: cumulative reads (ThreadCounters::read() and the like),
// which also keep each perf event's raw triple, and intervals (since(), and sums of those),
// which keep none. get() on a cumulative read returns the scaled cumulative estimate.
class CounterValues {
 public:
  std::optional<uint64_t> get(Counter c) const;
  // A plain value (an interval's, or a count without a triple such as getrusage's).
  void set(Counter c, uint64_t v);
  bool has(Counter c) const { return (valid_ >> static_cast<int>(c)) & 1u; }

  // A perf event's cumulative read: keeps the triple for since() and sets the value to the
  // scaled estimate (unavailable while the event was enabled but has never run; `multiplexed`
  // when it is an estimate).
  void set_raw(Counter c, const RawCount& r);
  std::optional<RawCount> raw(Counter c) const;

  // In an interval: the counter has no value because its event was enabled but never scheduled
  // onto the PMU during that interval (multiplexed out), as opposed to not countable here.
  bool not_counted(Counter c) const { return (not_counted_ >> static_cast<int>(c)) & 1u; }
  void set_not_counted(Counter c);
  uint32_t not_counted_mask() const { return not_counted_; }
  // Why `c` has no value in this interval, when the set itself knows (empty otherwise: the
  // probe's reasons say why a counter is not countable at all).
  std::string_view unavailable_reason(Counter c) const;

  // Adds another thread's values (intervals). A counter stays available only if both sides have
  // it, so a sum never hides a thread that could not count; not_counted marks are kept. The sum
  // is an interval: no raw triples.
  void accumulate(const CounterValues& other);
  // This - earlier, over one interval (both must come from the same counters object). Where
  // both reads kept raw triples the delta is scaled per interval (scale_delta) and `multiplexed`
  // says whether this interval needed it; otherwise it is the difference of the values, clamped
  // at 0, and a hardware counter's `multiplexed` is inherited from either read.
  CounterValues since(const CounterValues& earlier) const;
  // Marks every counter as available with value 0: the identity for accumulate().
  static CounterValues zero_all();

  // True when any hardware count in this set is an estimate because the kernel multiplexed the
  // PMU: over the interval, for an interval; since the counters were opened, for a cumulative
  // read.
  bool multiplexed = false;

 private:
  std::array<uint64_t, kCounterCount> v_{};
  // A cumulative read's triples, where raw_ has the bit (v_ then holds the scaled estimate).
  std::array<uint64_t, kCounterCount> raw_value_{}, enabled_{}, running_{};
  uint32_t valid_ = 0;
  uint32_t raw_ = 0;
  uint32_t not_counted_ = 0;
};

// What this machine can count, decided once per process by trying to open each event.
struct CounterProbe {
  uint32_t available_mask = 0;
  std::map<std::string, std::string> unavailable;  // counter name -> reason
  int perf_event_paranoid = -1;                    // -1 when unreadable
  bool available(Counter c) const { return (available_mask >> static_cast<int>(c)) & 1u; }
};

// The probe result for this process (computed on first use, thread-safe).
const CounterProbe& counter_probe();

// Counters of the calling thread. Construct and read on the same thread. Not copyable; the
// file descriptors close with the object.
class ThreadCounters {
 public:
  ThreadCounters();
  ~ThreadCounters();
  ThreadCounters(const ThreadCounters&) = delete;
  ThreadCounters& operator=(const ThreadCounters&) = delete;

  // Cumulative values since construction; take two and use since() for a delta.
  CounterValues read() const;

 private:
  struct Impl;
  Impl* impl_;
};

// Measures the calling thread from construction to stop(); the usual way a worker uses it.
class ThreadCounterScope {
 public:
  ThreadCounterScope() : start_(counters_.read()) {}
  CounterValues stop() const { return counters_.read().since(start_); }

 private:
  ThreadCounters counters_;
  CounterValues start_;
};

// Counters of the calling thread and of every thread it creates afterwards (and they create, and
// so on), each folded into the totals by the kernel: perf_event's `inherit`. For a model whose
// threads start per batch (free_threads): opened once, outside the timed region, by the thread
// that will start them, and read before and after the batch like ThreadCounters. A thread's
// counts are in every read after it has exited (a live thread's are added as far as the kernel
// has them).
//
// Voluntary and involuntary context switches come from getrusage, which cannot follow the
// children: RUSAGE_THREAD is the calling thread alone, RUSAGE_SELF every thread of the process
// (the runner's too). They are unavailable here, with the reason in unavailable();
// context_switches (perf) covers the children. Read on any thread; the counts belong to the
// constructing thread and its descendants.
class InheritedCounters {
 public:
  InheritedCounters();
  ~InheritedCounters();
  InheritedCounters(const InheritedCounters&) = delete;
  InheritedCounters& operator=(const InheritedCounters&) = delete;

  // Cumulative values since construction, with raw triples: use since() for a delta.
  CounterValues read() const;
  // counter name -> why this object cannot count it (the probe's reason, or its own).
  const std::map<std::string, std::string>& unavailable() const;

 private:
  struct Impl;
  Impl* impl_;
};

// Counters of a whole process: every thread present at construction and everything they start
// afterwards (threads, and child processes, which is how a fork()ed or spawn()ed worker pool is
// counted). For code the suite does not control, such as Python's threading or multiprocessing,
// where no per-worker ThreadCounters can be planted.
//
// Each (thread, event) pair is opened separately with `inherit`; reading a parent event sums its
// inherited children, live or exited. Context switches split into voluntary and involuntary come
// from getrusage(RUSAGE_SELF), which covers this process's threads but not its children; the
// perf counters cover both. A counter that could not be opened for every thread is unavailable
// rather than an undercount. Construct and read on any thread; opening costs a few syscalls per
// thread and event, reading one read() per descriptor.
class ProcessCounters {
 public:
  ProcessCounters();
  ~ProcessCounters();
  ProcessCounters(const ProcessCounters&) = delete;
  ProcessCounters& operator=(const ProcessCounters&) = delete;

  // Cumulative values since construction; use since() for a delta.
  CounterValues read() const;
  // Threads the counters were attached to at construction.
  int threads_attached() const;

 private:
  struct Impl;
  Impl* impl_;
};

// The scheduler's own view (bench_runner run --sched-trace): sched:sched_switch and
// sched:sched_wakeup, recorded on every CPU while a batch runs, kept for this process's threads
// and its worker processes, and turned into wake-up latencies: from a thread's wakeup (a GIL
// release signalling a waiter, an IO completion, a pool handing out work) to the moment it is
// switched in. Needs perf_event_open tracepoints system-wide (root or CAP_PERFMON, or
// perf_event_paranoid -1) and tracefs mounted for the event ids; where either is missing,
// available() is false and unavailable() says why. Open before the batch, start() and stop()
// around it; the ring buffers (one per CPU) are read after stop(), outside the timed region.
class SchedTrace {
 public:
  SchedTrace();
  ~SchedTrace();
  SchedTrace(const SchedTrace&) = delete;
  SchedTrace& operator=(const SchedTrace&) = delete;

  bool available() const;
  const std::string& unavailable() const;
  void start();
  void stop();
  // {wakeups, switches_in, latency_ns{p50, p99, max}, lost_records, threads} for the threads of
  // `pids` (this process included by the caller), from the records since start().
  nlohmann::json summarize(const std::vector<int>& pids) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace concbench
