// The one clock every timed region uses: steady, monotonic nanoseconds (vDSO, ~20 ns).
#pragma once

#include <chrono>
#include <cstdint>

namespace concbench {

inline uint64_t monotonic_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace concbench
