#include "concbench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace concbench {

double t_critical_95(size_t df) {
  // Exact table for small samples, where the t distribution differs most from the normal.
  static constexpr double kTable[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                      2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                      2.120, 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                      2.064, 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df == 0) return 0;
  if (df < std::size(kTable)) return kTable[df];
  if (df <= 40) return 2.021;
  if (df <= 60) return 2.000;
  if (df <= 120) return 1.980;
  return 1.960;
}

Summary summarize(const std::vector<double>& xs) {
  Summary s;
  s.n = xs.size();
  if (xs.empty()) return s;
  std::vector<double> v = xs;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(n);
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stddev = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
  s.cv = s.mean != 0 ? s.stddev / s.mean : 0.0;
  const double half = t_critical_95(n - 1) * s.stddev / std::sqrt(static_cast<double>(n));
  s.ci95_low = s.mean - half;
  s.ci95_high = s.mean + half;
  return s;
}

uint64_t percentile_sorted(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least p% of the sample at or below it.
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

LatencySummary latency_summary(std::vector<uint64_t> xs) {
  LatencySummary l;
  l.n = xs.size();
  if (xs.empty()) return l;
  std::sort(xs.begin(), xs.end());
  l.p50 = percentile_sorted(xs, 50);
  l.p99 = percentile_sorted(xs, 99);
  l.max = xs.back();
  return l;
}

void to_json(nlohmann::json& j, const Summary& s) {
  j = {{"n", s.n},   {"median", s.median}, {"mean", s.mean}, {"stddev", s.stddev},
       {"cv", s.cv}, {"min", s.min},       {"max", s.max},   {"ci95", {s.ci95_low, s.ci95_high}}};
}

void to_json(nlohmann::json& j, const LatencySummary& s) {
  if (s.n == 0) {
    j = {{"p50", nullptr}, {"p99", nullptr}, {"max", nullptr}};
    return;
  }
  j = {{"p50", s.p50}, {"p99", s.p99}, {"max", s.max}};
}

}  // namespace concbench
