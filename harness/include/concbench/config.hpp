// A run's configuration from a request whose keys mirror bench_runner's flags, so the CLI, the
// Python module (`concbench.run(config)`) and `python3 -m concbench run` accept exactly the same
// things and refuse them with the same messages.
//
// Keys: suite, workloads, models, workers, repetitions, min_time, timeout, params, scaling,
// checkpoint, switch_interval_us, pin, seed. Lists are JSON arrays or comma-separated strings;
// numbers are JSON numbers or strings; params is an object {key: value} or an array of
// "key=value" strings. As on the command line, naming workloads runs one batch per repetition
// (min_time 0) unless min_time is given.
#pragma once

#include <nlohmann/json.hpp>

#include "concbench/runner.hpp"

namespace concbench {

// Throws UsageError naming the first problem (an unknown key included); the result has been
// through validate().
RunConfig config_from_request(const nlohmann::json& request);

}  // namespace concbench
