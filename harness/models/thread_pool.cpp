// thread_pool: a persistent pool of N workers, started in setup (timed and reported apart from
// the batches), unpinned: the OS decides where each worker runs and may migrate it. Beside
// free_threads it shows what thread creation costs; beside pinned_pool, what placement costs.
#include "pool_model.hpp"

namespace concbench {

ModelInfo thread_pool_model_info() {
  ModelInfo info{"thread_pool", "a persistent pool of N workers started in setup, unpinned", {},
                 false,         [] { return std::make_unique<detail::PoolModel>(false); },   {}};
  info.shares_only_cpus = true;
  return info;
}

}  // namespace concbench
