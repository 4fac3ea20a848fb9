// schedstat where there is no /proc (chosen by CMake off Linux): every figure is unavailable,
// with the reason, and the attribution reports cpu and runqueue as null.
#include "concbench/attribution.hpp"

namespace concbench {

std::optional<SchedStat> own_schedstat() {
  return std::nullopt;
}
std::optional<SchedStat> task_schedstat(int, int) {
  return std::nullopt;
}
std::optional<uint64_t> machine_steal_ns() {
  return std::nullopt;
}
const std::string& schedstat_unavailable() {
  static const std::string why = "no schedstat on this OS (Linux /proc only)";
  return why;
}
double schedstat_read_cost_ns() {
  return 0.0;
}

}  // namespace concbench
