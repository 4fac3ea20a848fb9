// free_threads: N std::threads started for each batch, no lock, unpinned, pulling items from one
// shared queue: PEP 703's world. Thread creation is inside the timed batch on purpose; a
// persistent pool (thread_pool) is the comparison that removes it.
//
// spawn=per_task goes further: each worker creates (and joins) a fresh thread for every task, so
// the cost of thread creation stands beside pool reuse per task. Those short-lived threads open no
// perf counters (opening them would cost about as much as the creation being measured), so the
// cell's counters cover the N spawning workers only; model_metrics says so.
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

class FreeThreads final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
    per_task_ = cfg.params.get("spawn") == "per_task";
    // Opened on the thread that will start every batch's threads: they inherit it.
    counters_ = std::make_unique<InheritedCounters>();
  }
  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    std::vector<detail::WorkerLog> logs(static_cast<size_t>(cfg_.workers));
    detail::attach_trace(batch, logs);
    detail::TaskRunner runner;
    if (per_task_) {
      runner = [this](const Task& task, ExecContext& parent, uint64_t nonce) {
        uint64_t checksum = 0;
        std::exception_ptr error;
        std::thread t([&] {
          try {
            ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), parent.worker());
            checksum = execute_task(task, ctx, nonce).checksum;
          } catch (...) {
            error = std::current_exception();
          }
        });
        t.join();
        if (error) std::rethrow_exception(error);
        return checksum;
      };
    }
    detail::BatchQueue queue(batch, result, runner);
    io_->begin_batch();
    const CounterValues start = counters_->read();
    const detail::SwitchCount caller_start = detail::SwitchCount::now();
    // Thread creation is this model's work, so the span starts before it.
    result.begin_work();
    detail::run_on_threads(
        cfg_.workers,
        [&](int w) {
          detail::WorkerLog& log = logs[static_cast<size_t>(w)];
          const detail::SwitchCount s0 = detail::SwitchCount::now();
          ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), w);
          queue.drain(ctx, log);
          log.switches = detail::SwitchCount::now().since(s0);
        },
        [this] { cancel(); });
    result.end_work();
    // The inherited counters cover the caller (which only waits in join) and every thread the
    // batch started; the switch split is the workers' own plus the caller's.
    detail::SwitchCount switches = detail::SwitchCount::now().since(caller_start);
    for (const auto& l : logs) switches += l.switches;
    result.observations = io_->end_batch();
    result.model_metrics["workers"] = detail::workers_json(logs);
    detail::merge_logs(result, logs);
    result.counters = detail::with_switches(counters_->read().since(start), switches);
    result.model_metrics["threads_started"] =
        per_task_ ? cfg_.workers +
                        static_cast<int64_t>(std::count(result.done.begin(), result.done.end(), 1) +
                                             result.failures.size())
                  : cfg_.workers;
    result.model_metrics["spawn"] = per_task_ ? "per_task" : "per_worker";
    result.model_metrics["counters_cover"] =
        per_task_ ? "every thread of the batch; voluntary/involuntary switches the spawning "
                    "workers and the caller only"
                  : "every thread of the batch and the caller waiting for them";
    return result;
  }
  void teardown() override {
    io_.reset();
    counters_.reset();
  }
  void cancel() override { breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
  bool per_task_ = false;
  std::unique_ptr<InheritedCounters> counters_;
};

}  // namespace

ModelInfo free_threads_model_info() {
  ModelInfo info{
      "free_threads",
      "N threads per batch, no lock, unpinned, one shared queue",
      {ParamSpec::choice("spawn", "per_worker: N threads per batch; per_task: a thread per task",
                         "per_worker", {"per_worker", "per_task"})},
      false,
      [] { return std::make_unique<FreeThreads>(); },
      {}};
  info.shares_only_cpus = true;
  return info;
}

}  // namespace concbench
