// Process-wide settings that change what a benchmark measures, applied the same way by every
// entry point: bench_runner's main, the process-pool worker (forked or spawned) and the Python
// module's import. One definition (process_settings.cpp), so the entry points cannot drift
// apart again: a policy that differed between bench_runner and concbench.run once made every
// process_pool payload of 128 KiB or more fault its pages in per task under bench_runner only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace concbench {

struct ProcessSettings {
  // The allocator policy (glibc malloc; elsewhere nothing is set and `allocator` says so).
  //
  // Why explicit values rather than none: setting M_TRIM_THRESHOLD or M_TOP_PAD switches off
  // glibc's dynamic mmap threshold and leaves M_MMAP_THRESHOLD at its 128 KiB default, so every
  // larger block (a payload, a frame) is mmap'ed and unmapped per task and each of its pages
  // faults in again. Leaving all three alone keeps the dynamic threshold, but then the default
  // 128 KiB trim threshold hands freed heap back to the kernel between batches, and a model that
  // allocates per task pays those faults again in the next batch. So all three are set: blocks up
  // to mmap_threshold come from the heap, and freed heap is kept.
  size_t mmap_threshold = 0;
  size_t trim_threshold = 0;
  size_t top_pad = 0;
  bool allocator_applied = false;
  std::string allocator;  // what was done, e.g. "glibc mallopt: ..." or why nothing was
  // RLIMIT_NOFILE soft limit after raising it to the hard limit (the async models' lanes and the
  // process pool's sockets hold descriptors); 0 when getrlimit failed.
  uint64_t nofile_limit = 0;
};

// Applies the settings once per process (later calls return the first result; thread-safe).
// Call it before the first allocation that matters: first thing in main, in a worker before it
// serves, in the module's init.
const ProcessSettings& apply_process_settings();

}  // namespace concbench
