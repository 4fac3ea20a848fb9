// The price of an address space: what a process holds in memory, read from the kernel's own
// accounting. Linux: /proc/PID/smaps_rollup (Rss, Pss, Private_*) and /proc/PID/status (VmHWM,
// Threads); elsewhere every figure is unavailable with its reason (memory_stub.cpp).
//
// USS (unique set size: pages only this process maps, Private_Clean + Private_Dirty) is what
// the process costs on its own; PSS (each shared page divided among its sharers) adds its share
// of what it shares, so PSS summed over processes is what they cost together.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace concbench {

struct ProcessMemory {
  std::optional<uint64_t> rss_bytes, pss_bytes, uss_bytes, peak_rss_bytes;
  std::string unavailable;  // why a figure is missing (empty when all are there)
};

// pid 0: this process. Never throws; a process that has gone is reported unavailable.
ProcessMemory process_memory(int pid);

// Resets this process's peak RSS (VmHWM) to its current RSS, so a later peak_rss_bytes is the
// peak since this call (Linux 4.0+: clear_refs "5"). False where the kernel refuses.
bool reset_peak_rss();

// How many threads this process has now (/proc/self/status Threads:), or nothing.
std::optional<int> os_thread_count();

}  // namespace concbench
