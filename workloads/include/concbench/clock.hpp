// The one clock every timed region uses: steady, monotonic nanoseconds (vDSO, ~20 ns).
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdint>

namespace concbench {

inline uint64_t monotonic_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// CPU time of the calling thread (clock_gettime(CLOCK_THREAD_CPUTIME_ID): a syscall, not the
// vDSO, about 150 ns on the VMs this suite was written on).
inline uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// CPU time of this whole process (every thread; not its children), from getrusage(RUSAGE_SELF).
struct CpuTimes {
  uint64_t user_ns = 0, sys_ns = 0;
};

inline CpuTimes process_cpu_times() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
           static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
  };
  return {ns(ru.ru_utime), ns(ru.ru_stime)};
}

}  // namespace concbench
