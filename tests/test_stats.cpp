#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "concbench/stats.hpp"

namespace concbench {
namespace {

TEST(Stats, SummaryOfKnownSample) {
  const Summary s = summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8u);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_NEAR(s.stddev, 2.138089935, 1e-8);  // sample standard deviation
  EXPECT_NEAR(s.cv, 2.138089935 / 5, 1e-8);
  const double half = 2.365 * 2.138089935 / std::sqrt(8.0);
  EXPECT_NEAR(s.ci95_low, 5 - half, 1e-6);
  EXPECT_NEAR(s.ci95_high, 5 + half, 1e-6);
}

TEST(Stats, SingleAndEmptySamples) {
  const Summary one = summarize({3});
  EXPECT_DOUBLE_EQ(one.median, 3);
  EXPECT_DOUBLE_EQ(one.stddev, 0);
  EXPECT_DOUBLE_EQ(one.ci95_low, 3);
  EXPECT_EQ(summarize({}).n, 0u);
}

TEST(Stats, NearestRankPercentiles) {
  std::vector<uint64_t> v;
  for (uint64_t i = 1; i <= 100; ++i) v.push_back(101 - i);
  const LatencySummary l = latency_summary(v);
  EXPECT_EQ(l.p50, 50u);
  EXPECT_EQ(l.p99, 99u);
  EXPECT_EQ(l.max, 100u);
  EXPECT_EQ(latency_summary({7}).p99, 7u);
  nlohmann::json j = latency_summary({});
  EXPECT_TRUE(j["p50"].is_null());
}

TEST(Stats, TCriticalValuesApproachTheNormal) {
  EXPECT_DOUBLE_EQ(t_critical_95(1), 12.706);
  EXPECT_DOUBLE_EQ(t_critical_95(4), 2.776);
  EXPECT_DOUBLE_EQ(t_critical_95(1000), 1.960);
  for (size_t df = 1; df < 200; ++df) EXPECT_GE(t_critical_95(df), t_critical_95(df + 1));
}

}  // namespace
}  // namespace concbench

// Reference p-values from scipy.stats.mannwhitneyu (scipy 1.10, Debian 12) with the method our
// implementation reports using.
TEST(MannWhitney, ExactDistributionMatchesScipy) {
  const auto r = concbench::mann_whitney_u({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10});
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 0);
  EXPECT_NEAR(r.p_value, 0.007936507936507936, 1e-12);
  EXPECT_NEAR(r.min_p_value, 2.0 / 252, 1e-12);

  const auto r2 = concbench::mann_whitney_u({1.1, 2.2, 3.3, 4.4}, {2.5, 3.5, 5, 6, 7});
  EXPECT_TRUE(r2.exact);
  EXPECT_DOUBLE_EQ(r2.u, 3);
  EXPECT_NEAR(r2.p_value, 0.1111111111111111, 1e-12);

  const std::vector<double> a = {0.23796462709189137,  0.5442292252959519, 0.36995516654807925,
                                 0.6039200385961945,   0.625720304108054,  0.06552885923981311,
                                 0.013167991554874137, 0.83746908209646,   0.25935401432800764,
                                 0.23433096104669637,  0.9956448355104628, 0.47026350752244794};
  const std::vector<double> b = {1.1364614512743887, 0.776353208699335,  0.9390681405441619,
                                 0.4506164240235239, 0.9348606582851884, 1.1680453071432968,
                                 0.8231812103833014, 1.0412518562014903, 0.9714114753695926,
                                 0.3640314382269973, 1.0582302462868174, 0.8910995829313175,
                                 0.6012676595157123, 0.33101175146975,   1.1655272369789456};
  const auto r3 = concbench::mann_whitney_u(a, b);
  EXPECT_TRUE(r3.exact);
  EXPECT_DOUBLE_EQ(r3.u, 32);
  EXPECT_NEAR(r3.p_value, 0.0037157455248719214, 1e-12);
  // Symmetric: swapping the samples gives U' = n1 n2 - U and the same p.
  const auto r4 = concbench::mann_whitney_u(b, a);
  EXPECT_DOUBLE_EQ(r4.u, 12 * 15 - 32);
  EXPECT_NEAR(r4.p_value, r3.p_value, 1e-12);
}

TEST(MannWhitney, TiesUseTheCorrectedNormalApproximation) {
  const auto r = concbench::mann_whitney_u({1, 2, 2, 3, 4}, {2, 3, 3, 5, 6, 7});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 6);
  EXPECT_NEAR(r.p_value, 0.11390314458853068, 1e-9);
  const auto same = concbench::mann_whitney_u({5, 5, 5}, {5, 5, 5});
  EXPECT_DOUBLE_EQ(same.p_value, 1);
}

TEST(MannWhitney, SmallSamplesCannotBeSignificant) {
  // Two repetitions a side: even complete separation gives p = 1/3.
  const auto r = concbench::mann_whitney_u({1, 2}, {3, 4});
  EXPECT_NEAR(r.min_p_value, 1.0 / 3, 1e-12);
  EXPECT_NEAR(r.p_value, 1.0 / 3, 1e-12);
  EXPECT_NEAR(concbench::mann_whitney_u({3, 1}, {2, 4}).p_value, 0.6666666666666666, 1e-12);
  EXPECT_GT(concbench::mann_whitney_u({1, 2, 3}, {4, 5, 6}).min_p_value, 0.05);
  EXPECT_LT(concbench::mann_whitney_u({1, 2, 3, 4}, {5, 6, 7, 8}).min_p_value, 0.05);
  const auto empty = concbench::mann_whitney_u({}, {1, 2});
  EXPECT_DOUBLE_EQ(empty.p_value, 1);
  EXPECT_DOUBLE_EQ(empty.min_p_value, 1);
}

TEST(BootstrapMedianRatio, TheRatioIsOfTheMediansAndTheIntervalHoldsIt) {
  const std::vector<double> a = {10, 11, 9, 12, 8}, b = {5, 5.5, 4.5, 6, 4};
  const auto r = concbench::bootstrap_median_ratio({a}, {b});
  EXPECT_DOUBLE_EQ(r.ratio, 2);
  EXPECT_EQ(r.min_n, 5u);
  EXPECT_LE(r.low, r.ratio);
  EXPECT_GE(r.high, r.ratio);
  EXPECT_GT(r.low, 1);  // separated samples: the interval stays clear of 1
  // Resampled medians of five values reach at most the extremes: the ratio cannot leave
  // [min(a) / max(b), max(a) / min(b)].
  EXPECT_GE(r.low, 8.0 / 6);
  EXPECT_LE(r.high, 12.0 / 4);
}

TEST(BootstrapMedianRatio, OverlappingSamplesGiveAnIntervalAcross1) {
  const std::vector<double> a = {10, 12, 9, 11.5, 9.5}, b = {10.5, 9, 11, 10, 12.5};
  const auto r = concbench::bootstrap_median_ratio({a}, {b});
  EXPECT_LT(r.low, 1);
  EXPECT_GT(r.high, 1);
}

TEST(BootstrapMedianRatio, IsDeterministicForASeedAndNarrowsWithConfidence) {
  const std::vector<double> a = {10, 11, 9, 12, 8, 10.5, 9.5}, b = {7, 9, 8, 8.5, 7.5, 10, 6};
  const auto r1 = concbench::bootstrap_median_ratio({a}, {b}, 0.95, 2000, 7);
  const auto r2 = concbench::bootstrap_median_ratio({a}, {b}, 0.95, 2000, 7);
  EXPECT_EQ(r1.low, r2.low);
  EXPECT_EQ(r1.high, r2.high);
  const auto r80 = concbench::bootstrap_median_ratio({a}, {b}, 0.80, 2000, 7);
  EXPECT_GE(r80.low, r1.low);
  EXPECT_LE(r80.high, r1.high);
}

TEST(BootstrapMedianRatio, SeveralSamplesAndDegenerateOnes) {
  // (median 4 * median 3) / (median 2 * median 1) = 6, constant samples: a point interval.
  const auto r = concbench::bootstrap_median_ratio({{4, 4, 4}, {3, 3}}, {{2, 2, 2}, {1}});
  EXPECT_DOUBLE_EQ(r.ratio, 6);
  EXPECT_DOUBLE_EQ(r.low, 6);
  EXPECT_DOUBLE_EQ(r.high, 6);
  EXPECT_EQ(r.min_n, 1u);
  const auto empty = concbench::bootstrap_median_ratio({{1, 2}}, {{}});
  EXPECT_EQ(empty.min_n, 0u);
  EXPECT_DOUBLE_EQ(empty.ratio, 0);
}
