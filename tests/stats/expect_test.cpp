// Claims between cells ([[expect]]; core/src/gates/expect.hpp,
// core/src/stats/intervals.hpp) on simulated cells of known truth: a cell
// truly smaller holds, truly equal is inconclusive, truly larger is violated;
// the intervals cover the true quantiles; pairing, the family's confidence,
// and a claim without data never holds.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "gates/expect.hpp"
#include "simulate.hpp"
#include "stats/intervals.hpp"

using namespace vmlat;
using namespace vmlat::stats;

namespace {

constexpr double kRate = 1000;  // samples per second: a 1 ms period
constexpr std::size_t kSamples = 300000;

// The law of a cell; `scale` stretches every quantile (scale > 1: truly larger everywhere).
sim::Latency law(double scale) {
  sim::Latency l;
  l.body_median_us *= scale;
  l.u0_us *= scale;
  l.sigma_us *= scale;
  return l;
}

ExpectCell cell(const std::string& id, ExpectAxes axes, const sim::Latency& l, std::uint64_t seed, std::size_t n = kSamples) {
  std::mt19937_64 rng(seed);
  return ExpectCell{id, "", std::move(axes), l.histogram(n, rng), static_cast<double>(n) / kRate};
}

ExpectSpec claim(const std::string& stat, Selector smaller, Selector larger) {
  ExpectSpec e;
  e.name = stat;
  e.stat = stat;
  if (stat[0] == 'p') e.quantile = *parse_percentile(stat);
  e.smaller = std::move(smaller);
  e.larger = std::move(larger);
  return e;
}

// Two cells differing in `kernel`: rt drawn from scale_rt, nrt from scale_nrt.
std::vector<ExpectCell> two_cells(double scale_rt, double scale_nrt, std::uint64_t seed) {
  return {cell("kvm-rt", {{"backend", "kvm"}, {"guest_kernel", "rt"}}, law(scale_rt), seed),
          cell("kvm-nrt", {{"backend", "kvm"}, {"guest_kernel", "nrt"}}, law(scale_nrt), seed + 1000003)};
}

std::map<std::string, int> tally(const std::string& stat, double scale_rt, double scale_nrt, int seeds) {
  std::map<std::string, int> out;
  for (int s = 1; s <= seeds; ++s) {
    auto cells = two_cells(scale_rt, scale_nrt, static_cast<std::uint64_t>(s));
    auto r = judge_expects({claim(stat, {{"guest_kernel", {"rt"}}}, {{"guest_kernel", {"nrt"}}})}, cells);
    ++out[r.at(0).verdict];
  }
  return out;
}

}  // namespace

// A truly smaller statistic holds, a truly larger one is violated, equal
// ones stay inconclusive: 12 seeds each, at the default 99%. The larger cell's
// law is stretched by 1.6 for the body's statistics and by 2.5 for the
// tail's, whose intervals are wider (at 1.6 the tail model decides 7-8 of 12).
TEST(Claims, KnownTruthGivesHoldsInconclusiveViolated) {
  for (const std::string stat : {"p50", "p99", "mean", "max", "rl1h"}) {
    SCOPED_TRACE(stat);
    const bool tail = stat == "max" || stat == "rl1h";
    const double stretch = tail ? 2.5 : 1.6;
    auto smaller = tally(stat, 1.0, stretch, 12);
    auto equal = tally(stat, 1.0, 1.0, 12);
    auto larger = tally(stat, stretch, 1.0, 12);
    std::printf("%-5s truly smaller: %d holds %d inconclusive %d violated; equal: %d/%d/%d; truly larger: %d/%d/%d\n", stat.c_str(),
                smaller["holds"], smaller["inconclusive"], smaller["violated"], equal["holds"], equal["inconclusive"], equal["violated"],
                larger["holds"], larger["inconclusive"], larger["violated"]);
    EXPECT_EQ(smaller["violated"], 0);
    EXPECT_EQ(larger["holds"], 0);
    EXPECT_LE(equal["holds"] + equal["violated"], 1);  // at most 1% each expected; 1 of 12 tolerated
    // The body statistics are sharp with 300,000 samples; the tail's need the model to fit.
    const int needed = tail ? 10 : 12;
    EXPECT_GE(smaller["holds"], needed);
    EXPECT_GE(larger["violated"], needed);
  }
}

// The order-statistic interval covers the true quantile at least as often as
// its confidence says (bucketing only widens it).
TEST(Claims, QuantileIntervalsCoverTheTrueQuantile) {
  const sim::Latency l = law(1.0);
  for (double q : {0.5, 0.99}) {
    const double truth = l.quantile_us(q) * 1000;
    int covered = 0;
    const int seeds = 200;
    for (int s = 1; s <= seeds; ++s) {
      std::mt19937_64 rng(static_cast<std::uint64_t>(s) * 7919);
      const Histogram h = l.histogram(20000, rng);
      const StatInterval i = quantile_interval(h, q, 0.9);
      ASSERT_LE(i.low_ns, i.value_ns);
      ASSERT_GE(i.high_ns, i.value_ns);
      covered += i.low_ns <= truth && truth <= i.high_ns;
    }
    std::printf("q=%g: the 90%% interval covered the true quantile in %d of %d seeds\n", q, covered, seeds);
    EXPECT_GE(covered, 0.9 * seeds - 10) << q;
  }
}

TEST(Claims, AMaxWithoutATailModelHasNoUpperLimit) {
  Histogram h;
  for (int i = 0; i < 100; ++i) h.add(std::chrono::microseconds(10 + i % 5));
  const TailFit fit = fit_tail(h, 0.1);
  ASSERT_FALSE(fit.fitted());
  const StatInterval i = level_interval(fit, h, 0.1, 0.99);
  EXPECT_TRUE(std::isinf(i.high_ns));
  EXPECT_NE(i.method.find("no tail model"), std::string::npos) << i.method;
  // So a max claim on such cells cannot hold, whatever the maxima.
  std::vector<ExpectCell> cells{{"a", "", {{"k", "a"}}, h, 0.1}, {"b", "", {{"k", "b"}}, h, 0.1}};
  cells[1].histogram.add(std::chrono::milliseconds(50));
  auto r = judge_expects({claim("max", {{"k", {"a"}}}, {{"k", {"b"}}})}, cells);
  EXPECT_EQ(r.at(0).verdict, "inconclusive");
}

TEST(Claims, AClaimWithoutAMeasuredPairIsInconclusiveNeverHolds) {
  std::vector<ExpectCell> cells{cell("kvm-rt", {{"backend", "kvm"}, {"guest_kernel", "rt"}}, law(1), 1, 20000)};
  auto r = judge_expects({claim("p50", {{"guest_kernel", {"rt"}}}, {{"guest_kernel", {"nrt"}}})}, cells);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].verdict, "inconclusive");
  EXPECT_TRUE(r[0].pairs.empty());
  EXPECT_NE(r[0].reason.find("no measured pair"), std::string::npos) << r[0].reason;
  EXPECT_FALSE(r[0].failed());
  auto none = judge_expects({claim("p50", {{"guest_kernel", {"rt"}}}, {{"guest_kernel", {"nrt"}}})}, {});
  EXPECT_EQ(none.at(0).verdict, "inconclusive");
}

// Cells pair when they agree on every axis neither selector names; a host
// cell (no guest_kernel: out of its scope) pairs with guests at its period.
TEST(Claims, CellsPairOnTheAxesTheSelectorsDoNotName) {
  std::vector<ExpectAxes> axes{
      {{"backend", "host"}, {"period", "50us"}},
      {{"backend", "host"}, {"period", "1ms"}},
      {{"backend", "kvm"}, {"period", "50us"}, {"guest_kernel", "nrt"}},
      {{"backend", "kvm"}, {"period", "1ms"}, {"guest_kernel", "nrt"}},
      {{"backend", "kvm"}, {"period", "1ms"}, {"guest_kernel", "rt"}},
  };
  std::vector<const ExpectAxes*> ptrs;
  for (const auto& a : axes) ptrs.push_back(&a);
  ExpectSpec host_vs_nrt = claim("max", {{"backend", {"host"}}}, {{"backend", {"kvm"}}, {"guest_kernel", {"nrt"}}});
  std::uint64_t count = 0;
  auto pairs = expect_pairs(host_vs_nrt, ptrs, 100, &count);
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(pairs, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}, {1, 3}}));
  // Without naming guest_kernel, a kvm cell has guest_kernel and a host cell
  // has not: they never agree on it.
  ExpectSpec unnamed = claim("max", {{"backend", {"host"}}}, {{"backend", {"kvm"}}});
  EXPECT_TRUE(expect_pairs(unnamed, ptrs, 100).empty());
  // Overlapping selectors never pair a cell with itself.
  ExpectSpec same = claim("max", {{"period", {"1ms"}}}, {{"period", {"1ms"}}});
  for (const auto& [i, j] : expect_pairs(same, ptrs, 100)) EXPECT_NE(i, j);
  // The limit bounds what is returned, not what is counted.
  ExpectSpec any = claim("max", {{"period", {"1ms", "50us"}}}, {{"period", {"1ms", "50us"}}});  // sorted, as parse_selector leaves them
  std::uint64_t all = 0;
  EXPECT_EQ(expect_pairs(any, ptrs, 1, &all).size(), 1u);
  EXPECT_GT(all, 1u);
}

// Every pair of every claim is one family: each pair's intervals are at
// 1 - (1 - c) / pairs (Bonferroni).
TEST(Claims, TheRunsPairsAreOneFamily) {
  std::vector<ExpectCell> cells;
  for (const std::string p : {"50us", "100us", "1ms"}) {
    cells.push_back(cell("rt-" + p, {{"guest_kernel", "rt"}, {"period", p}}, law(1), 11, 20000));
    cells.push_back(cell("nrt-" + p, {{"guest_kernel", "nrt"}, {"period", p}}, law(1.5), 12, 20000));
  }
  ExpectSpec a = claim("p50", {{"guest_kernel", {"rt"}}}, {{"guest_kernel", {"nrt"}}});
  ExpectSpec b = claim("p99", {{"guest_kernel", {"rt"}}, {"period", {"1ms"}}}, {{"guest_kernel", {"nrt"}}, {"period", {"1ms"}}});
  b.confidence = 0.9;
  auto r = judge_expects({a, b}, cells);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].pairs.size(), 3u);
  EXPECT_EQ(r[1].pairs.size(), 1u);
  EXPECT_EQ(r[0].family, 4u);
  EXPECT_NEAR(r[0].pair_confidence, 1 - 0.01 / 4, 1e-12);
  EXPECT_NEAR(r[1].pair_confidence, 1 - 0.1 / 4, 1e-12);
  EXPECT_EQ(r[0].verdict, "holds");
}

TEST(Claims, AViolatedGatingClaimFailsAndItsJsonReadsBack) {
  auto cells = two_cells(1.6, 1.0, 5);
  ExpectSpec e = claim("p50", {{"guest_kernel", {"rt"}}}, {{"guest_kernel", {"nrt"}}});
  e.gate = true;
  e.description = "<b>seed</b> finding";
  auto r = judge_expects({e}, cells);
  ASSERT_EQ(r.at(0).verdict, "violated");
  EXPECT_TRUE(r[0].failed());
  EXPECT_NE(r[0].reason.find("kvm-rt"), std::string::npos) << r[0].reason;
  json j = expect_json(r[0]);
  EXPECT_EQ(j["verdict"], "violated");
  EXPECT_EQ(j["smaller"], json({{"guest_kernel", {"rt"}}}));
  EXPECT_EQ(j["pairs"][0]["smaller"]["cell"], "kvm-rt");
  EXPECT_TRUE(j["pairs"][0]["smaller"]["low_ns"].is_number());
  std::string why;
  auto back = expect_spec_from_json(j, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->name, e.name);
  EXPECT_EQ(back->quantile, 0.5);
  EXPECT_EQ(back->smaller, e.smaller);
  EXPECT_EQ(back->larger, e.larger);
  EXPECT_TRUE(back->gate);
  EXPECT_EQ(back->description, e.description);
  // Not a claim: refused with a reason, never guessed.
  json bad = j;
  bad["stat"] = "p1000x";
  EXPECT_FALSE(expect_spec_from_json(bad, &why));
  EXPECT_NE(why.find("p1000x"), std::string::npos);
  bad = j;
  bad["larger"] = json::object();
  EXPECT_FALSE(expect_spec_from_json(bad));
}
