// Helpers shared by the model tests: a workload's tasks from given parameters, and a model set
// up with given workers and parameters.
#pragma once

#include <map>
#include <memory>
#include <string>

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
