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
#include <optional>
#include <string>
#include <string_view>

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

// A set of counter values; an entry without a value is unavailable on this machine.
class CounterValues {
 public:
  std::optional<uint64_t> get(Counter c) const;
  void set(Counter c, uint64_t v);
  bool has(Counter c) const { return (valid_ >> static_cast<int>(c)) & 1u; }

  // Adds another thread's values. A counter stays available only if both sides have it, so a
  // sum never hides a thread that could not count.
  void accumulate(const CounterValues& other);
  // Element-wise this - earlier (both must come from the same ThreadCounters).
  CounterValues since(const CounterValues& earlier) const;
  // Marks every counter as available with value 0: the identity for accumulate().
  static CounterValues zero_all();

  // True when any hardware count was scaled because the kernel multiplexed the PMU.
  bool multiplexed = false;

 private:
  std::array<uint64_t, kCounterCount> v_{};
  uint32_t valid_ = 0;
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

}  // namespace concbench
