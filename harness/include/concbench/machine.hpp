// The report's `context` block: a description of the machine, the build and the counters, so a
// reader (or `bench_runner compare`) can tell whether two reports are comparable.
#pragma once

#include <nlohmann/json.hpp>

namespace concbench {

// date, hostname, cpu_model, logical_cpus, physical_cores, topology, kernel, compiler, build_type,
// cpu_governor, virtualized (+ how it was detected), load_average, git_revision,
// counters_unavailable {counter: reason}, counter_read_cost_ns, and Google Benchmark's own
// context keys (num_cpus, mhz_per_cpu, caches, library_build_type) so its tools accept us.
nlohmann::json machine_context();

// How many CPUs this process gets right now: `threads` threads spin for `seconds`, then one
// thread alone; the lesser of the process's CPU time over the wall time and the work the
// threads did over what one thread does (2.0 means two threads really ran at once, on cores of
// their own: SMT siblings, or vCPUs the host runs on one core, give their full CPU time but
// about one core's work).
// Tests whose claim needs idle cores check it before and after, and skip with the figure when
// the machine is busy, so they never pass or fail by luck.
double parallel_capacity(int threads, double seconds);

}  // namespace concbench
