#include <deque>
#include <mutex>
#include <stdexcept>

#include "concbench/model.hpp"

namespace concbench {

// One file per model under harness/models/; each exposes its ModelInfo here.
ModelInfo serial_model_info();
ModelInfo free_threads_model_info();
ModelInfo gil_threads_model_info();
ModelInfo thread_pool_model_info();
ModelInfo pinned_pool_model_info();
ModelInfo process_pool_model_info();
ModelInfo async_model_info();
ModelInfo async_mt_model_info();
ModelInfo interpreters_model_info();
ModelInfo process_threads_model_info();
ModelInfo fibers_model_info();

namespace {

// A deque, so that pointers handed out by find_model stay valid when a model is registered.
// Guarded by registry_mu(): registration may come from any thread (a Python import).
struct Registry {
  std::mutex mu;
  std::deque<ModelInfo> models;
  Registry() {
    for (auto f : {serial_model_info, free_threads_model_info, gil_threads_model_info,
                   thread_pool_model_info, pinned_pool_model_info, process_pool_model_info,
                   async_model_info, async_mt_model_info, interpreters_model_info,
                   process_threads_model_info, fibers_model_info})
      models.push_back(f());
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

std::vector<const ModelInfo*> all_models() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::vector<const ModelInfo*> out;
  for (const ModelInfo& m : r.models) out.push_back(&m);
  return out;
}

const ModelInfo* find_model(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const ModelInfo& m : r.models)
    if (m.name == name) return &m;
  return nullptr;
}

void register_model(ModelInfo info) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const ModelInfo& m : r.models)
    if (m.name == info.name)
      throw std::invalid_argument("model '" + info.name + "' is already registered");
  r.models.push_back(std::move(info));
}

}  // namespace concbench
