#include "concbench/memory.hpp"

namespace concbench {

ProcessMemory process_memory(int) {
  ProcessMemory m;
  m.unavailable = "memory accounting is read from /proc, which this system does not have";
  return m;
}

bool reset_peak_rss() {
  return false;
}

std::optional<int> os_thread_count() {
  return std::nullopt;
}

}  // namespace concbench
