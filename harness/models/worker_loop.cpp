#include "worker_loop.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <thread>

#include "concbench/kernels.hpp"

namespace concbench::detail {

SwitchCount SwitchCount::now() {
  rusage ru{};
  if (getrusage(RUSAGE_THREAD, &ru) != 0) return {};
  return {static_cast<uint64_t>(ru.ru_nvcsw), static_cast<uint64_t>(ru.ru_nivcsw)};
}

CounterValues with_switches(CounterValues perf, const SwitchCount& switches) {
  perf.set(Counter::voluntary_context_switches, switches.voluntary);
  perf.set(Counter::involuntary_context_switches, switches.involuntary);
  return perf;
}

void note_cpu(std::vector<int>& seen) {
  const int cpu = sched_getcpu();  // vDSO: a few nanoseconds
  if (cpu < 0) return;
  if (!seen.empty() && seen.back() == cpu) return;  // the common case: still where it was
  if (std::find(seen.begin(), seen.end(), cpu) == seen.end()) seen.push_back(cpu);
}

void BatchQueue::drain(ExecContext& ctx, WorkerLog& log) {
  const std::vector<Task>& tasks = *batch_.tasks;
  const uint64_t n = tasks.size();
  const uint64_t items = batch_.items();
  if (!log.active) log.active.emplace();
  log.attr.worker = ctx.worker();
  WorkerTimes* const saved_times = ctx.times();
  ctx.set_times(&log.attr.times);
  uint64_t completed = 0;
  note_cpu(log.cpus_seen);  // where the worker was, even if it gets no item
  for (;;) {
    if (ctx.cancel_requested()) break;
    // Relaxed: the counter only hands out distinct indices; results are published to the
    // model's thread by joining (or the pool's completion handshake), not through it.
    const uint64_t k = next_.fetch_add(1, std::memory_order_relaxed);
    if (k >= items) break;
    const Task& task = tasks[k % n];
    const uint64_t nonce = round_nonce(batch_.nonce, k / n);
    const bool sampled = batch_.sampled(k);
    TraceBuffer* const trace = log.attr.times.trace;
    uint64_t t0 = 0;
    if (sampled || trace) [[unlikely]] {
      if (sampled) note_cpu(log.cpus_seen);
      t0 = monotonic_ns();
      if (trace) {
        const int cpu = sched_getcpu();
        trace->add(TraceKind::cpu, t0, t0, static_cast<uint64_t>(cpu < 0 ? 0 : cpu));
      }
    }
    try {
      result_.checksums[k] =
          runner_ ? runner_(task, ctx, nonce) : execute_task(task, ctx, nonce).checksum;
      result_.done[k] = 1;
      ++completed;
      if (sampled || trace) [[unlikely]] {
        const uint64_t t1 = monotonic_ns();
        if (sampled) result_.latency_ns[k / batch_.latency_stride] = t1 - t0;
        if (trace) trace->add(TraceKind::task, t0, t1, k);
      }
    } catch (const TaskCancelled&) {
      break;
    } catch (const std::exception& e) {
      log.failures.push_back({k, std::string("task threw: ") + e.what()});
    } catch (...) {
      log.failures.push_back({k, "task threw a non-standard exception"});
    }
  }
  note_cpu(log.cpus_seen);
  ctx.set_times(saved_times);
  log.attr.times.tasks += completed;
  log.active->finish(log.attr);
  log.active.reset();
  log.attributed = true;
}

void merge_logs(BatchResult& result, std::vector<WorkerLog>& logs) {
  CounterValues sum = CounterValues::zero_all();
  for (auto& l : logs) {
    for (auto& f : l.failures) result.failures.push_back(std::move(f));
    sum.accumulate(l.counters);
    if (l.attributed) result.attribution.push_back(std::move(l.attr));
  }
  result.counters = sum;
}

nlohmann::json workers_json(const std::vector<WorkerLog>& logs, const std::vector<int>& bound,
                            const std::vector<std::string>& bind_errors,
                            const std::vector<std::string>& memory_notes) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t w = 0; w < logs.size(); ++w) {
    std::vector<int> seen = logs[w].cpus_seen;
    std::sort(seen.begin(), seen.end());
    nlohmann::json j = {{"worker", w}, {"cpus_seen", seen}};
    if (w < bound.size()) {
      const bool ok = w >= bind_errors.size() || bind_errors[w].empty();
      j["bound_pu"] = bound[w];
      j["bound"] = ok;
      if (!ok) j["bind_error"] = bind_errors[w];
    } else {
      j["bound_pu"] = nullptr;
    }
    if (w < memory_notes.size() && !memory_notes[w].empty()) j["memory"] = memory_notes[w];
    out.push_back(std::move(j));
  }
  return out;
}

void run_on_threads(int n, const std::function<void(int)>& body,
                    const std::function<void()>& on_fail,
                    const std::function<void(int)>& after_start) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  try {
    for (int w = 0; w < n; ++w) {
      threads.emplace_back(body, w);
      if (after_start) after_start(w);
    }
  } catch (...) {
    on_fail();
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
}

}  // namespace concbench::detail
