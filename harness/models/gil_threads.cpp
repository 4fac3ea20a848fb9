// gil_threads: N OS threads per batch, as threading.Thread starts them, behind an emulated
// CPython GIL (gil.hpp). A thread holds the GIL while it runs kernel code; at each checkpoint it
// yields if another thread has asked for the lock (one switch interval after it started
// waiting); it releases the lock around IO and native sections. So threads are concurrent but
// not parallel, exactly where CPython's are.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "concbench/gil.hpp"
#include "concbench/io_env.hpp"
#include "gil_hooks.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

using detail::gil_metrics;
using detail::GilHooks;

class GilThreads final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
    const auto us = std::chrono::microseconds(cfg.params.get_int("switch_interval_us"));
    gil_ = std::make_unique<Gil>(breaker_, us);
    hooks_ = std::make_unique<GilHooks>(*gil_);
    per_instruction_ = cfg.params.get("checkpoint") == "per_instruction";
    // Opened on the thread that will start every batch's threads: they inherit it.
    counters_ = std::make_unique<InheritedCounters>();
  }

  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    const auto n = static_cast<size_t>(cfg_.workers);
    std::vector<detail::WorkerLog> logs(n);
    // Reused across batches, never reallocated: the GIL remembers its last holder by address.
    threads_.resize(n);
    for (GilThread& t : threads_) t = GilThread{};
    detail::attach_trace(batch, logs);
    for (size_t i = 0; i < n; ++i) threads_[i].trace = logs[i].attr.times.trace;
    std::vector<GilThread>& threads = threads_;
    detail::BatchQueue queue(batch, result);
    io_->begin_batch();
    const CounterValues start = counters_->read();
    const detail::SwitchCount caller_start = detail::SwitchCount::now();
    result.begin_work();
    detail::run_on_threads(
        cfg_.workers,
        [&](int w) {
          const auto i = static_cast<size_t>(w);
          const detail::SwitchCount s0 = detail::SwitchCount::now();
          ExecContext ctx(breaker_, *hooks_, io_.get(), w);
          ctx.set_model_data(&threads[i]);
          ctx.set_per_instruction(per_instruction_);
          // A Python thread runs with the GIL from its first bytecode to its last; its first
          // wait for it is the worker's time too.
          logs[i].active.emplace();
          gil_->take(threads[i]);
          queue.drain(ctx, logs[i]);
          gil_->drop(threads[i], /*force_switch=*/false);
          detail::add_gil_times(logs[i].attr.times, threads[i]);
          logs[i].switches = detail::SwitchCount::now().since(s0);
        },
        [this] { cancel(); });
    result.end_work();
    detail::SwitchCount switches = detail::SwitchCount::now().since(caller_start);
    for (const auto& l : logs) switches += l.switches;
    result.observations = io_->end_batch();
    result.model_metrics["workers"] = detail::workers_json(logs);
    detail::merge_logs(result, logs);
    result.counters = detail::with_switches(counters_->read().since(start), switches);
    result.model_metrics.update(gil_metrics(threads));
    result.model_metrics["threads_started"] = cfg_.workers;
    result.model_metrics["switch_interval_us"] = gil_->interval().count();
    result.model_metrics["checkpoint"] = per_instruction_ ? "per_instruction" : "backedge";
    return result;
  }

  void teardown() override {
    io_.reset();
    counters_.reset();
  }
  void cancel() override { breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<InheritedCounters> counters_;
  std::unique_ptr<IoEnv> io_;
  std::unique_ptr<Gil> gil_;
  std::unique_ptr<GilHooks> hooks_;
  bool per_instruction_ = false;
  std::vector<GilThread> threads_;
};

}  // namespace

ModelInfo gil_threads_model_info() {
  ModelInfo info{
      "gil_threads",
      "N threads per batch behind an emulated CPython 3.11/3.12 GIL",
      {ParamSpec::integer("switch_interval_us", "GIL switch interval (sys.setswitchinterval)", 5000,
                          1, 10'000'000),
       ParamSpec::choice("checkpoint",
                         "eval-breaker checks: backedge (3.10+) or per_instruction (<= 3.9)",
                         "backedge", {"backedge", "per_instruction"})},
      false,
      [] { return std::make_unique<GilThreads>(); },
      {}};
  info.latency_means = "the task's run time on its thread, time waiting for the GIL included";
  return info;
}

}  // namespace concbench
