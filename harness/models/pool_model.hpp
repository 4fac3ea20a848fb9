// The persistent-pool models, thread_pool (unpinned) and pinned_pool (each worker bound to one PU
// through hwloc), share this implementation; each has its own file for its registration.
// Internal to harness/models.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/io_env.hpp"
#include "concbench/model.hpp"
#include "concbench/thread_pool.hpp"
#include "concbench/topology.hpp"

namespace concbench::detail {

// The machine's topology, loaded once per process.
const Topology& host_topology();

class PoolModel final : public Model {
 public:
  explicit PoolModel(bool pinned) : pinned_(pinned) {}
  void setup(const ModelConfig& cfg) override;
  BatchResult run(const Batch& batch) override;
  void teardown() override;
  void cancel() override { breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed); }

 private:
  const bool pinned_;
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
  std::unique_ptr<ThreadPool> pool_;
  // Written by each worker in on_start (before the pool's constructor returns), read after.
  std::vector<std::unique_ptr<ThreadCounters>> counters_;
  std::vector<int> bound_;
  std::vector<std::string> bind_errors_;
  std::vector<std::string> memory_notes_;
  std::string placement_;
};

}  // namespace concbench::detail
