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

}  // namespace concbench
