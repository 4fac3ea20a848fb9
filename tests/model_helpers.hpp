// Helpers shared by the model tests: a workload's tasks from given parameters, and a model set
// up with given workers and parameters.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "concbench/machine.hpp"
#include "concbench/model.hpp"
#include "concbench/workload.hpp"

namespace concbench::testing_helpers {

inline TaskSet tasks_of(const char* workload, const std::map<std::string, std::string>& given,
                        uint64_t seed = 3) {
  const Workload& w = *find_workload(workload);
  return w.make_tasks(Params::resolve(w.params(), given, workload), seed);
}

// What item k of `batch` must return: the workload's prediction sealed with the item's nonce.
inline uint64_t expected_item(const TaskSet& ts, const Batch& batch, uint64_t k) {
  return seal(ts.expected[k % ts.tasks.size()], batch.item_nonce(k));
}
// The same for a batch left at nonce 0 (the nonce then depends on the item's round only).
inline uint64_t expected_item(const TaskSet& ts, uint64_t k) {
  return expected_item(ts, Batch{&ts.tasks, 1}, k);
}

// Skips the calling test unless this process can run `threads` threads at once right now. Call
// it before and after a measurement whose claim needs idle cores.
#define CONCBENCH_REQUIRE_IDLE_CPUS(threads)                                                \
  do {                                                                                      \
    const double got_ = ::concbench::parallel_capacity((threads), 0.05);                    \
    if (got_ < 0.9 * (threads))                                                             \
      GTEST_SKIP() << "needs " << (threads) << " idle CPUs; the machine gave this process " \
                   << got_ << " (another process is using them)";                           \
  } while (0)

inline std::unique_ptr<Model> start(const char* name, int workers,
                                    const std::map<std::string, std::string>& params = {}) {
  auto m = find_model(name)->create();
  ModelConfig cfg;
  cfg.workers = workers;
  cfg.params = Params::resolve(find_model(name)->params, params, name);
  m->setup(cfg);
  return m;
}

}  // namespace concbench::testing_helpers
