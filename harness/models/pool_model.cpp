#include "pool_model.hpp"

#include "worker_loop.hpp"

namespace concbench::detail {

const Topology& host_topology() {
  static const Topology topo = Topology::host();
  return topo;
}

void PoolModel::setup(const ModelConfig& cfg) {
  Model::setup(cfg);
  io_ = std::make_unique<IoEnv>();
  const auto n = static_cast<size_t>(cfg.workers);
  counters_.resize(n);
  bind_errors_.assign(n, "");
  memory_notes_.assign(n, "");
  std::vector<unsigned> pus;
  bool numa = false;
  if (pinned_) {
    const Topology& topo = host_topology();
    const Placement placement = Placement::parse(cfg.params.get("pin"));
    placement_ = placement.to_string();
    pus = topo.place(placement, cfg.workers);
    bound_.assign(pus.begin(), pus.end());
    numa = topo.numa_nodes() > 1;
  }
  pool_ = std::make_unique<ThreadPool>(
      cfg.workers,
      [this, pus, numa](int w) {
        const auto i = static_cast<size_t>(w);
        if (pinned_) {
          const Topology& topo = host_topology();
          bind_errors_[i] = topo.bind_thread(pus[i]);
          // With several NUMA nodes, what this worker allocates is first touched on its own node.
          if (numa) {
            const std::string err = topo.bind_memory_near(pus[i]);
            memory_notes_[i] = err.empty() ? "local NUMA node" : err;
          }
        }
        // Opened after binding, on the worker itself: persistent workers need counters of their
        // own (inherited ones would only count them when they exit).
        counters_[i] = std::make_unique<ThreadCounters>();
      },
      [this](int w) { counters_[static_cast<size_t>(w)].reset(); });
}

BatchResult PoolModel::run(const Batch& batch) {
  BatchResult result = BatchResult::for_batch(batch);
  const auto n = static_cast<size_t>(cfg_.workers);
  std::vector<WorkerLog> logs(n);
  attach_trace(batch, logs);
  std::vector<CounterValues> start(n);
  BatchQueue queue(batch, result);
  io_->begin_batch();
  // Counters are read on each worker (getrusage(RUSAGE_THREAD) can only be) in passes of their
  // own before and after the batch, so the batch's span holds nothing but the dispatch.
  pool_->run_on_all(
      [&](int w) { start[static_cast<size_t>(w)] = counters_[static_cast<size_t>(w)]->read(); });
  result.begin_work();
  pool_->run_on_all([&](int w) {
    ExecContext ctx(breaker_, no_lock_hooks(), io_.get(), w);
    queue.drain(ctx, logs[static_cast<size_t>(w)]);
  });
  result.end_work();
  pool_->run_on_all([&](int w) {
    const auto i = static_cast<size_t>(w);
    logs[i].counters = counters_[i]->read().since(start[i]);
  });
  result.observations = io_->end_batch();
  result.model_metrics["workers"] = workers_json(logs, bound_, bind_errors_, memory_notes_);
  if (pinned_) result.model_metrics["placement"] = placement_;
  result.model_metrics["pool_threads"] = cfg_.workers;
  merge_logs(result, logs);
  return result;
}

void PoolModel::teardown() {
  pool_.reset();
  io_.reset();
}

}  // namespace concbench::detail
