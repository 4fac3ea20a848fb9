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

// Mann-Whitney U test (Wilcoxon rank-sum) of two independent samples, two-sided. It asks whether
// one sample tends to be larger without assuming normality, which benchmark repetitions rarely
// have (a noisy neighbour makes a long right tail).
struct MannWhitney {
  double u = 0;        // U of the first sample: pairs (a, b) with a > b, ties counting one half
  double p_value = 1;  // two-sided
  bool exact = false;  // from the exact distribution of U; otherwise the normal approximation
  // The smallest two-sided p-value samples of these sizes can give (2 / C(n1 + n2, n1)): above
  // the significance level, no outcome could count as significant, so "not significant" would
  // claim more than the data can say.
  double min_p_value = 1;
};

// Exact when there are no ties and n1 + n2 <= 60; otherwise the normal approximation with tie
// and continuity corrections (scipy.stats.mannwhitneyu's "asymptotic" method). An empty sample
// gives p = 1 and min_p_value = 1.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

// A ratio of medians, prod median(num[i]) / prod median(den[j]), with a percentile bootstrap
// confidence interval: every sample is resampled with replacement on its own, `resamples` times,
// and the interval is the central `confidence` share of the resampled ratios. The generator is
// seeded with `seed` and is the same on every platform, so the same samples give the same
// interval. Like the U test, it treats the values of a sample as independent draws.
struct RatioInterval {
  double ratio = 0;  // of the medians of the samples as given
  double low = 0, high = 0;
  size_t min_n = 0;  // the size of the smallest sample; 0 when one is empty (ratio is then 0)
};

// The resamples and the seed every report-level conclusion uses (compare's conclusions, the
// verdict's margins): fixed, so the same report always prints the same intervals.
inline constexpr size_t kBootstrapResamples = 2000;
inline constexpr uint64_t kBootstrapSeed = 0x636f6e6362656e63;  // "concbenc"

RatioInterval bootstrap_median_ratio(const std::vector<std::vector<double>>& num,
                                     const std::vector<std::vector<double>>& den,
                                     double confidence = 0.95, size_t resamples = 2000,
                                     uint64_t seed = 1);

// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
double t_critical_95(size_t df);

void to_json(nlohmann::json& j, const Summary& s);
void to_json(nlohmann::json& j, const LatencySummary& s);

}  // namespace concbench
