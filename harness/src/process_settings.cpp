// The one definition of the process-wide settings (process_settings.hpp).
#include "concbench/process_settings.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace concbench {

namespace {

// 32 MiB is the largest M_MMAP_THRESHOLD glibc accepts on 64-bit (HEAP_MAX_SIZE / 2; mallopt
// refuses more). Payloads up to it are served from the heap; the process pool's buffers persist
// per worker anyway, so a larger payload is mapped once, not per task.
constexpr size_t kMmapThreshold = size_t{32} << 20;
constexpr size_t kTrimThreshold = size_t{512} << 20;
constexpr size_t kTopPad = size_t{64} << 20;

ProcessSettings apply() {
  ProcessSettings s;
#if defined(__GLIBC__)
  // mallopt returns 1 on success, 0 on error (it sets no errno).
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold)) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold)) == 1;
  const bool pad_ok = mallopt(M_TOP_PAD, static_cast<int>(kTopPad)) == 1;
  s.mmap_threshold = mmap_ok ? kMmapThreshold : 0;
  s.trim_threshold = trim_ok ? kTrimThreshold : 0;
  s.top_pad = pad_ok ? kTopPad : 0;
  s.allocator_applied = mmap_ok && trim_ok && pad_ok;
  s.allocator =
      "glibc mallopt: M_MMAP_THRESHOLD=" +
      (mmap_ok ? std::to_string(kMmapThreshold) : std::string("refused")) +
      " M_TRIM_THRESHOLD=" + (trim_ok ? std::to_string(kTrimThreshold) : std::string("refused")) +
      " M_TOP_PAD=" + (pad_ok ? std::to_string(kTopPad) : std::string("refused"));
#else
  s.allocator = "not glibc: the allocator's defaults";
#endif
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rlimit raised = rl;
      raised.rlim_cur = rl.rlim_max;
      // A refusal (a container's policy) leaves the old limit, which is still a working one.
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    s.nofile_limit = static_cast<uint64_t>(rl.rlim_cur);
  }
  return s;
}

}  // namespace

const ProcessSettings& apply_process_settings() {
  // A function-local static: applied exactly once, even with concurrent first callers.
  static const ProcessSettings s = apply();
  return s;
}

}  // namespace concbench
