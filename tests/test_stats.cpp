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
