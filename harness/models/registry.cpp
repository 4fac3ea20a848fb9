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

const std::vector<ModelInfo>& all_models() {
  static const std::vector<ModelInfo> all = {serial_model_info(),      free_threads_model_info(),
                                             gil_threads_model_info(), thread_pool_model_info(),
                                             pinned_pool_model_info(), process_pool_model_info(),
                                             async_model_info(),       async_mt_model_info()};
  return all;
}

const ModelInfo* find_model(std::string_view name) {
  for (const ModelInfo& m : all_models())
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace concbench
