// The loop shared by every model whose workers pull items from one batch (serial, free threads,
// thread pools, GIL threads): claim an item, run it, record its latency or its failure.
// Internal to harness/models.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <vector>

#include "concbench/clock.hpp"
#include "concbench/exec_context.hpp"
#include "concbench/model.hpp"

namespace concbench::detail {

// Voluntary and involuntary switches of the calling thread so far: getrusage(RUSAGE_THREAD), one
// syscall and no descriptor. Models whose threads start per batch count them with an
// InheritedCounters opened once in setup (perf events opened per thread would sit inside the
// timed batch), which cannot split switches by kind; each thread adds its own split instead.
struct SwitchCount {
  uint64_t voluntary = 0, involuntary = 0;
  static SwitchCount now();
  SwitchCount& operator+=(const SwitchCount& o) {
    voluntary += o.voluntary;
    involuntary += o.involuntary;
    return *this;
  }
  SwitchCount since(const SwitchCount& earlier) const {
    return {voluntary - earlier.voluntary, involuntary - earlier.involuntary};
  }
};

// A batch's counters from an InheritedCounters delta, with the switch split the threads summed.
CounterValues with_switches(CounterValues perf, const SwitchCount& switches);

// Per-worker record, merged into the BatchResult after the workers are done, so the hot path
// writes nothing shared except the item's own result slots (checksum, done, latency sample).
struct WorkerLog {
  std::vector<TaskFailure> failures;
  CounterValues counters;
  SwitchCount switches;  // where the model counts with InheritedCounters (see SwitchCount)
  // Distinct CPUs the worker was seen on: when it starts and stops, and on each latency-sampled
  // item (sched_getcpu costs little, but per item it is bookkeeping no model does).
  std::vector<int> cpus_seen;
  // Where the worker's time went. drain() opens the active interval unless the model already
  // did (gil_threads opens it before the thread's first GIL acquisition), closes it at its end,
  // and times the IO waits through the context; the model adds what only it knows (GIL waits).
  std::optional<ActiveInterval> active;
  WorkerAttribution attr;
  bool attributed = false;
};

// Adds the CPU the calling thread is on to `seen` (sched_getcpu, a vDSO call) if it is new.
void note_cpu(std::vector<int>& seen);

// Per worker: the PU it was bound to (or null) with the binding's outcome, and the CPUs it was
// seen on. `bound` and `bind_errors` may be empty (unpinned models).
nlohmann::json workers_json(const std::vector<WorkerLog>& logs, const std::vector<int>& bound = {},
                            const std::vector<std::string>& bind_errors = {},
                            const std::vector<std::string>& memory_notes = {});

// How an item is executed: inline by default; a model may interpose (free_threads'
// spawn=per_task runs each task on a thread of its own).
using TaskRunner = std::function<uint64_t(const Task&, ExecContext&, uint64_t nonce)>;

class BatchQueue {
 public:
  BatchQueue(const Batch& batch, BatchResult& result, TaskRunner runner = {})
      : batch_(batch), result_(result), runner_(std::move(runner)) {}

  // Runs items until none is left or the model is cancelled. Safe to call from many threads.
  // `result` must come from BatchResult::for_batch (latency slots preallocated).
  void drain(ExecContext& ctx, WorkerLog& log);

 private:
  const Batch& batch_;
  BatchResult& result_;
  TaskRunner runner_;
  // Alone on its cache line: every worker hits it once per item.
  alignas(64) std::atomic<uint64_t> next_{0};
  [[maybe_unused]] char pad_[64 - sizeof(std::atomic<uint64_t>)];  // keeps neighbours off the line
};

// --trace: gives worker w's log the batch's buffer w (drain() records into it), if any.
inline void attach_trace(const Batch& batch, std::vector<WorkerLog>& logs) {
  if (!batch.trace) return;
  batch.trace->recorded = true;
  for (size_t w = 0; w < logs.size(); ++w)
    logs[w].attr.times.trace = batch.trace->worker(static_cast<int>(w));
}

// Folds the workers' logs into `result` (failures, summed counters, attribution).
void merge_logs(BatchResult& result, std::vector<WorkerLog>& logs);

// Runs body(w) on `n` new threads and joins them. If a thread cannot be started, `on_fail`
// stops the ones that were (it must make them return), they are joined, and the error rethrown.
// after_start(w), when given, runs on the caller right after thread w was created and before
// the next one is (a model that starts threads as threading.Thread.start does waits there).
void run_on_threads(int n, const std::function<void(int)>& body,
                    const std::function<void()>& on_fail,
                    const std::function<void(int)>& after_start = nullptr);

}  // namespace concbench::detail
