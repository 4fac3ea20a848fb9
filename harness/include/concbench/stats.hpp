// Summary statistics over repetitions and percentiles over task latencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace concbench {

struct Summary {
  size_t n = 0;
  double median = 0, mean = 0, stddev = 0, cv = 0, min = 0, max = 0;
  // 95% confidence interval of the mean (Student's t); equal to the mean when n < 2.
  double ci95_low = 0, ci95_high = 0;
};

Summary summarize(const std::vector<double>& xs);

struct LatencySummary {
  uint64_t p50 = 0, p99 = 0, max = 0;
  size_t n = 0;
};

// Percentiles by the nearest-rank method (a value that was actually observed).
LatencySummary latency_summary(std::vector<uint64_t> xs);
// p in [0, 100] of sorted `xs` by nearest rank; 0 for an empty vector.
uint64_t percentile_sorted(const std::vector<uint64_t>& sorted, double p);

// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
double t_critical_95(size_t df);

void to_json(nlohmann::json& j, const Summary& s);
void to_json(nlohmann::json& j, const LatencySummary& s);

}  // namespace concbench
