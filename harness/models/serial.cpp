// serial: every task inline on the calling thread, one after another. The baseline every
// speedup_vs_serial is measured against.
#include <atomic>
#include <memory>

#include "concbench/io_env.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

class Serial final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
    counters_ = std::make_unique<ThreadCounters>();  // setup and run share the caller's thread
  }
  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    std::vector<detail::WorkerLog> logs(1);
    detail::attach_trace(batch, logs);
    ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), 0);
    detail::BatchQueue queue(batch, result);
    io_->begin_batch();
    const CounterValues start = counters_->read();
    result.begin_work();
    queue.drain(ctx, logs[0]);
    result.end_work();
    logs[0].counters = counters_->read().since(start);
    result.observations = io_->end_batch();
    result.model_metrics["workers"] = detail::workers_json(logs);
    detail::merge_logs(result, logs);
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
  std::unique_ptr<ThreadCounters> counters_;
};

}  // namespace

ModelInfo serial_model_info() {
  return {"serial",
          "every task inline on the calling thread (the baseline)",
          {},
          true,
          [] { return std::make_unique<Serial>(); },
          {}};
}

}  // namespace concbench
