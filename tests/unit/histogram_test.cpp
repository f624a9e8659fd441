#include <gtest/gtest.h>

#include "vmlat/histogram.hpp"

using namespace vmlat;
using namespace std::chrono_literals;

// 10 samples: 1,2,...,10 us. Nearest rank: p50 -> rank 5 -> 5us; p90 -> rank 9
// -> 9us; p99 -> ceil(9.9)=10 -> 10us.
TEST(Histogram, PercentilesMatchHandComputedNearestRank) {
  Histogram h;
  for (int i = 1; i <= 10; ++i) h.add(std::chrono::microseconds(i));
  EXPECT_EQ(h.samples(), 10u);
  EXPECT_EQ(h.percentile(0.50), 5us);
  EXPECT_EQ(h.percentile(0.90), 9us);
  EXPECT_EQ(h.percentile(0.99), 10us);
  EXPECT_EQ(h.percentile(0.10), 1us);
  EXPECT_EQ(h.percentile(0.11), 2us);  // ceil(1.1) = rank 2
  EXPECT_EQ(h.min(), 1us);
  EXPECT_EQ(h.max(), 10us);
  EXPECT_EQ(h.mean(), 5500ns);  // 55us / 10
}

TEST(Histogram, BucketsAreOneMicrosecondFloors) {
  Histogram h;
  h.add(1999ns);
  h.add(2000ns);
  h.add(2999ns);
  ASSERT_EQ(h.buckets().size(), 2u);
  EXPECT_EQ(h.buckets().at(1), 1u);
  EXPECT_EQ(h.buckets().at(2), 2u);
  // Exact extremes are kept, percentiles are clamped to them.
  EXPECT_EQ(h.min(), 1999ns);
  EXPECT_EQ(h.max(), 2999ns);
  EXPECT_EQ(h.percentile(0.01), 1999ns);  // bucket 1 lower edge 1000ns clamped up to min
  EXPECT_EQ(h.percentile(1.0), 2000ns);
}

TEST(Histogram, MergeAddsCountsAndKeepsExtremes) {
  Histogram a, b;
  for (int i = 0; i < 90; ++i) a.add(10us);
  for (int i = 0; i < 10; ++i) b.add(100us);
  b.add_missed_periods(3);
  a.merge(b);
  EXPECT_EQ(a.samples(), 100u);
  EXPECT_EQ(a.min(), 10us);
  EXPECT_EQ(a.max(), 100us);
  EXPECT_EQ(a.percentile(0.90), 10us);   // rank 90 is the last 10us sample
  EXPECT_EQ(a.percentile(0.91), 100us);  // rank 91
  EXPECT_EQ(a.missed_periods(), 3u);
  EXPECT_EQ(a.mean(), 19us);  // (900 + 1000) / 100
}

TEST(Histogram, OverflowRanksReportTheExactMax) {
  Histogram h;
  h.add_bucket(5, 98);
  h.add_overflows(2);
  h.set_exact(5us, 30ms, 5us * 98 + 50ms);
  EXPECT_EQ(h.samples(), 100u);
  EXPECT_EQ(h.percentile(0.98), 5us);
  EXPECT_EQ(h.percentile(0.99), 30ms);  // rank 99 is an overflow sample
  auto s = h.stats();
  EXPECT_EQ(s.overflows, 2u);
  EXPECT_EQ(s.max, 30ms);
}

TEST(Histogram, EmptyHasZeroStats) {
  Histogram h;
  auto s = h.stats();
  EXPECT_EQ(s.samples, 0u);
  EXPECT_EQ(s.max, 0ns);
  EXPECT_TRUE(h.empty());
}

TEST(Histogram, JsonRoundTrip) {
  Histogram h;
  h.add(12345ns, 3);
  h.add(7ms);
  h.add_overflows(4);
  h.add_missed_periods(1);
  auto back = Histogram::from_json(h.to_json());
  EXPECT_EQ(back.buckets(), h.buckets());
  EXPECT_EQ(back.samples(), h.samples());
  EXPECT_EQ(back.max(), h.max());
  EXPECT_EQ(back.min(), h.min());
  EXPECT_EQ(back.sum(), h.sum());
  EXPECT_EQ(back.missed_periods(), 1u);
  EXPECT_EQ(back.stats().p99, h.stats().p99);
}

TEST(Histogram, FromJsonRejectsMalformed) {
  EXPECT_THROW(Histogram::from_json(json{{"buckets", 3}}), std::invalid_argument);
  auto j = Histogram().to_json();
  j["bucket_width_ns"] = 10;
  EXPECT_THROW(Histogram::from_json(j), std::invalid_argument);
}
