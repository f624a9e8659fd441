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
  a.add_missed_periods(0);  // a probe that counts them, and counted none
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

// Missed periods a probe did not count (cyclictest, timerlat) are unknown,
// never 0: in stats, JSON (null) and after merges with counted ones.
TEST(Histogram, MissedPeriodsNotCountedStayUnknown) {
  Histogram uncounted;
  uncounted.add(10us, 5);
  EXPECT_FALSE(uncounted.missed_periods().has_value());
  EXPECT_FALSE(uncounted.stats().missed_periods.has_value());
  EXPECT_TRUE(uncounted.to_json().at("missed_periods").is_null());
  EXPECT_TRUE(stats_to_json(uncounted.stats()).at("missed_periods").is_null());
  std::string appended;
  uncounted.append_json(appended);
  EXPECT_EQ(appended, uncounted.to_json().dump());
  EXPECT_FALSE(Histogram::from_json(uncounted.to_json()).missed_periods().has_value());

  Histogram counted;
  counted.add(10us, 5);
  counted.add_missed_periods(0);
  EXPECT_EQ(counted.missed_periods(), 0u);
  EXPECT_EQ(Histogram::from_json(counted.to_json()).missed_periods(), 0u);

  // Counted + not counted = not known; a fresh histogram takes either state.
  Histogram mixed = counted;
  mixed.merge(uncounted);
  EXPECT_FALSE(mixed.missed_periods().has_value());
  Histogram fresh_then_counted;
  fresh_then_counted.merge(counted);
  EXPECT_EQ(fresh_then_counted.missed_periods(), 0u);
  Histogram fresh_then_uncounted;
  fresh_then_uncounted.merge(uncounted);
  EXPECT_FALSE(fresh_then_uncounted.missed_periods().has_value());
  // An empty histogram that counted nothing changes nothing.
  Histogram counted_then_empty = counted;
  counted_then_empty.merge(Histogram());
  EXPECT_EQ(counted_then_empty.missed_periods(), 0u);
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

namespace {
// A histogram with samples spread over many buckets, some large counts.
Histogram spread(unsigned seed, int n) {
  Histogram h;
  std::uint64_t x = seed * 2654435761u + 1;
  for (int i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    h.add(nanoseconds(static_cast<long long>((x >> 33) % 25'000'000)), 1 + (x >> 60));
  }
  h.add_overflows(seed);
  h.add_missed_periods(seed * 3);
  return h;
}
}  // namespace

TEST(Histogram, AppendJsonIsExactlyToJsonDump) {
  for (unsigned seed = 0; seed < 20; ++seed) {
    Histogram h = spread(seed, static_cast<int>(seed * 37));
    std::string out = "prefix";
    h.append_json(out);
    EXPECT_EQ(out, "prefix" + h.to_json().dump()) << seed;
  }
  Histogram neg;
  neg.set_exact(nanoseconds(-5), nanoseconds(-1), nanoseconds(-9));
  std::string out;
  neg.append_json(out);
  EXPECT_EQ(out, neg.to_json().dump());
}

TEST(Histogram, ReservedBucketsAreInvisible) {
  Histogram plain = spread(7, 500);
  Histogram reserved;
  reserved.reserve_buckets(10'000);
  EXPECT_EQ(reserved.buckets().size(), 10'000u);
  EXPECT_TRUE(reserved.empty());
  EXPECT_EQ(reserved.to_json(), Histogram().to_json());
  reserved.merge(plain);
  // Samples beyond the reserved range still land in their buckets.
  EXPECT_GT(reserved.buckets().size(), 10'000u);
  EXPECT_EQ(reserved.to_json(), plain.to_json());
  std::string a, b;
  reserved.append_json(a);
  plain.append_json(b);
  EXPECT_EQ(a, b);
  auto s1 = reserved.stats(), s2 = plain.stats();
  EXPECT_EQ(s1.samples, s2.samples);
  EXPECT_EQ(s1.p50, s2.p50);
  EXPECT_EQ(s1.p99, s2.p99);
  EXPECT_EQ(s1.p9999, s2.p9999);
  EXPECT_EQ(s1.max, s2.max);
  EXPECT_EQ(s1.min, s2.min);
  EXPECT_EQ(s1.mean, s2.mean);
  // Merging a reserved histogram adds none of its empty buckets.
  Histogram other;
  other.merge(reserved);
  EXPECT_EQ(other.buckets().size(), plain.buckets().size());
  // Reserving a histogram that holds samples keeps them.
  Histogram late = spread(7, 500);
  late.reserve_buckets(1000);
  EXPECT_EQ(late.to_json(), plain.to_json());
}
