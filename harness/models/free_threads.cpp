// free_threads: N std::threads started for each batch, no lock, unpinned, pulling items from one
// shared queue: PEP 703's world. Thread creation is inside the timed batch on purpose; a
// persistent pool (thread_pool) is the comparison that removes it.
#include <atomic>
#include <memory>
#include <thread>
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
    const int n = cfg_.workers;
    std::vector<detail::WorkerLog> logs(static_cast<size_t>(n));
    detail::BatchQueue queue(batch, result);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(n));
    try {
      for (int w = 0; w < n; ++w) {
        threads.emplace_back([this, w, &queue, &logs] {
          ThreadCounterScope counters;
          ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), w);
          queue.drain(ctx, logs[static_cast<size_t>(w)]);
          logs[static_cast<size_t>(w)].counters = counters.stop();
        });
      }
    } catch (...) {
      // Could not start every thread: stop the ones that did before the batch goes away.
      cancel();
      for (auto& t : threads) t.join();
      throw;
    }
    for (auto& t : threads) t.join();
    detail::merge_logs(result, logs);
    result.model_metrics["threads_started"] = n;
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
