#include "concbench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
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

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  MannWhitney r;
  const size_t n1 = a.size(), n2 = b.size(), n = n1 + n2;
  if (n1 == 0 || n2 == 0) return r;

  // Midranks of the pooled sample; tie groups also feed the variance correction.
  std::vector<std::pair<double, bool>> pooled;  // (value, from a)
  pooled.reserve(n);
  for (double x : a) pooled.emplace_back(x, true);
  for (double x : b) pooled.emplace_back(x, false);
  std::sort(pooled.begin(), pooled.end(),
            [](const auto& l, const auto& r2) { return l.first < r2.first; });
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && pooled[j].first == pooled[i].first) ++j;
    const double t = static_cast<double>(j - i);
    const double midrank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k)
      if (pooled[k].second) rank_sum_a += midrank;
    if (t > 1) ties = true, tie_term += t * t * t - t;
    i = j;
  }
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2);
  r.u = rank_sum_a - d1 * (d1 + 1) / 2;

  // C(n, n1) as a double: exact well past the sizes a benchmark has.
  double combinations = 1;
  for (size_t k = 1; k <= std::min(n1, n2); ++k)
    combinations =
        combinations * static_cast<double>(n - std::min(n1, n2) + k) / static_cast<double>(k);
  r.min_p_value = std::min(1.0, 2 / combinations);

  if (!ties && n <= 60) {
    // counts[u] = arrangements of the two samples giving U = u; built by adding the elements of
    // the second sample one at a time: f(u; i, j) = f(u - j; i - 1, j) + f(u; i, j - 1).
    const size_t umax = n1 * n2;
    std::vector<std::vector<double>> f(n1 + 1, std::vector<double>(umax + 1, 0));
    for (size_t i = 0; i <= n1; ++i) f[i][0] = 1;  // j = 0: every a ranks above no b
    for (size_t j = 1; j <= n2; ++j) {
      for (size_t i = 1; i <= n1; ++i) {
        // Ascending i: f[i] still holds f(.; i, j - 1) and f[i - 1] already holds f(.; i - 1, j).
        for (size_t u = umax; u >= j; --u) f[i][u] += f[i - 1][u - j];
      }
    }
    const std::vector<double>& counts = f[n1];
    const auto u_obs = static_cast<size_t>(std::llround(r.u));
    const size_t hi = std::max(u_obs, umax - u_obs);  // the symmetric upper tail
    double tail = 0;
    for (size_t u = hi; u <= umax; ++u) tail += counts[u];
    r.p_value = std::min(1.0, 2 * tail / combinations);
    r.exact = true;
    return r;
  }

  const double mu = d1 * d2 / 2;
  const double dn = static_cast<double>(n);
  const double var = d1 * d2 / 12 * ((dn + 1) - tie_term / (dn * (dn - 1)));
  if (var <= 0) return r;  // every value equal: no evidence either way
  const double z = std::max(0.0, std::abs(r.u - mu) - 0.5) / std::sqrt(var);
  r.p_value = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  return r;
}

namespace {

// splitmix64: std::uniform_int_distribution differs between standard libraries, and the interval
// printed for a report should not depend on which one built the tool.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // The modulo bias is below n / 2^64: nothing next to a sample of repetitions.
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

double median_in_place(std::vector<double>& v) {
  const size_t n = v.size(), mid = n / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double hi = v[mid];
  if (n % 2) return hi;
  return (*std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid)) + hi) / 2;
}

}  // namespace

RatioInterval bootstrap_median_ratio(const std::vector<std::vector<double>>& num,
                                     const std::vector<std::vector<double>>& den, double confidence,
                                     size_t resamples, uint64_t seed) {
  RatioInterval r;
  r.min_n = SIZE_MAX;
  for (const auto* side : {&num, &den})
    for (const auto& s : *side) r.min_n = std::min(r.min_n, s.size());
  if (r.min_n == SIZE_MAX || r.min_n == 0) {
    r.min_n = 0;
    return r;
  }
  auto ratio_of = [&](auto&& median_of) {
    double q = 1;
    for (const auto& s : num) q *= median_of(s);
    for (const auto& s : den) q /= median_of(s);
    return q;
  };
  r.ratio = ratio_of([](const std::vector<double>& s) {
    std::vector<double> v = s;
    return median_in_place(v);
  });
  SplitMix64 rng{seed};
  std::vector<double> draw, ratios;
  ratios.reserve(resamples);
  for (size_t b = 0; b < resamples; ++b) {
    ratios.push_back(ratio_of([&](const std::vector<double>& s) {
      draw.resize(s.size());
      for (double& x : draw) x = s[rng.below(s.size())];
      return median_in_place(draw);
    }));
  }
  if (ratios.empty()) {
    r.low = r.high = r.ratio;
    return r;
  }
  std::sort(ratios.begin(), ratios.end());
  const double tail = (1 - std::clamp(confidence, 0.0, 1.0)) / 2;
  const auto n = static_cast<double>(ratios.size());
  auto at = [&](double p) {  // the p-quantile by nearest rank, as percentile_sorted does
    const auto rank = static_cast<size_t>(std::ceil(p * n));
    return ratios[std::clamp<size_t>(rank, 1, ratios.size()) - 1];
  };
  r.low = at(tail);
  r.high = at(1 - tail);
  return r;
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
