// pinned_pool: the persistent pool with each worker bound to one PU through hwloc, placed by
// --pin compact | scatter | list:... (topology.hpp). With several NUMA nodes each worker's
// memory is first touched on its own node. A refused binding is reported per worker in
// model_metrics.workers, never hidden.
#include "pool_model.hpp"

namespace concbench {

ModelInfo pinned_pool_model_info() {
  ModelInfo info{
      "pinned_pool",
      "the persistent pool with each worker bound to one PU (hwloc), placed by --pin",
      {ParamSpec::text("pin", "compact | scatter | list:0,2,4 (OS PU indexes)", "compact")},
      false,
      [] { return std::make_unique<detail::PoolModel>(true); },
      [](const Params& p) {
        // Refuse a placement this machine cannot honour before anything runs.
        detail::host_topology().place(Placement::parse(p.get("pin")), 1);
      }};
  info.shares_only_cpus = true;
  return info;
}

}  // namespace concbench
