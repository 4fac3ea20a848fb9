// free_threads: N std::threads started for each batch, no lock, unpinned, pulling items from one
// shared queue: PEP 703's world. Thread creation is inside the timed batch on purpose; a
// persistent pool (thread_pool) is the comparison that removes it.
#include <atomic>
#include <memory>
#include <vector>

#include "concbench/io_env.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

class FreeThreads final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
  }
  BatchResult run(const Batch& batch) override {
    BatchResult result(batch.items());
    std::vector<detail::WorkerLog> logs(static_cast<size_t>(cfg_.workers));
    detail::BatchQueue queue(batch, result);
    io_->begin_batch();
    detail::run_on_threads(
        cfg_.workers,
        [&](int w) {
          ThreadCounterScope counters;
          ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), w);
          queue.drain(ctx, logs[static_cast<size_t>(w)]);
          logs[static_cast<size_t>(w)].counters = counters.stop();
        },
        [this] { cancel(); });
    result.observations = io_->end_batch();
    detail::merge_logs(result, logs);
    result.model_metrics["threads_started"] = cfg_.workers;
    return result;
  }
  void teardown() override { io_.reset(); }
  void cancel() override { breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
};

}  // namespace

ModelInfo free_threads_model_info() {
  return {
      "free_threads", "N threads per batch, no lock, unpinned, one shared queue", {}, false, [] {
        return std::make_unique<FreeThreads>();
      }};
}

}  // namespace concbench
