// Verdicts against a history (core/src/stats/history.hpp), validated by
// simulation from the mechanism (tests/stats/simulate.hpp): runs of n samples
// from a known latency distribution, each run scaled by a random factor (the
// run-to-run drift of a shared VM); percentiles as vmlat reports them (1 us
// bucket edges), maxima exact, so a run's max is a genuine block maximum.
#include <gtest/gtest.h>

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <cstdio>
#include <random>

#include "simulate.hpp"
#include "stats/history.hpp"

using namespace vmlat;
using namespace vmlat::stats;

namespace {

// A shared 2-core VM as the issue measured it: p99 ~75 us, max ~2 ms in 20,000
// samples, heavy tail (xi 0.6), runs drifting by ~10%.
sim::Latency vm() {
  sim::Latency l;
  l.body_median_us = 8;
  l.body_sigma = 0.3;
  l.u0_us = 20;
  l.zeta0 = 0.05;
  l.sigma_us = 20;
  l.xi = 0.6;
  return l;
}
// The same VM with stress-ng beside the probe: p99 ~2 ms, max ~35 ms.
sim::Latency stressed() {
  sim::Latency l = vm();
  l.body_median_us = 20;
  l.u0_us = 50;
  l.zeta0 = 0.2;
  l.sigma_us = 300;
  l.xi = 0.5;
  return l;
}

constexpr std::uint64_t kSamples = 20000;  // a 10 s cell at 1 ms on 2 CPUs
constexpr double kDrift = 0.1;             // sd of log(run scale)

struct SimRun {
  double v[4];  // p50, p99, p99.9, max (ns)
};
SimRun draw(const sim::Latency& lat, std::mt19937_64& rng, double factor = 1) {
  std::normal_distribution<double> drift(0, kDrift);
  const auto s = sim::run_stats(lat, kSamples, rng, factor * std::exp(drift(rng)));
  return {{s.p50_ns, s.p99_ns, s.p999_ns, s.max_ns}};
}

// The tests of one cell: 4 statistics of `now` against `history`.
void add_cell(std::vector<StatisticTest>& tests, const std::vector<SimRun>& history, const SimRun& now, const HistoryOptions& o) {
  std::vector<double> h(history.size());
  for (int s = 0; s < 4; ++s) {
    for (std::size_t r = 0; r < history.size(); ++r) h[r] = history[r].v[s];
    tests.push_back(test_statistic(h, now.v[s], s == 3 ? StatisticKind::maximum : StatisticKind::percentile,
                                   s == 3 ? 0 : 1000, o));
  }
}

std::size_t count(const std::vector<StatisticVerdict>& v, Verdict what) {
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [&](const auto& x) { return x.verdict == what; }));
}

struct Tally {
  int trials = 0, runs_failed = 0;
  std::size_t statistics = 0, regressed = 0, improved = 0, inconclusive = 0;
};
// `trials` runs of `cells` cells against histories of `runs` runs, every run
// from `lat` (new runs scaled by `factor`).
Tally simulate(int trials, std::size_t cells, std::size_t runs, const HistoryOptions& o, std::uint64_t seed,
               const sim::Latency& lat, const sim::Latency& now_lat, double factor) {
  Tally t;
  std::mt19937_64 rng(seed);
  std::vector<SimRun> history(runs);
  std::vector<StatisticTest> tests;
  for (int trial = 0; trial < trials; ++trial) {
    tests.clear();
    for (std::size_t c = 0; c < cells; ++c) {
      for (auto& r : history) r = draw(lat, rng);
      add_cell(tests, history, draw(now_lat, rng, factor), o);
    }
    const auto v = judge(tests, o);
    const auto reg = count(v, Verdict::regressed);
    ++t.trials;
    t.runs_failed += reg > 0;
    t.statistics += v.size();
    t.regressed += reg;
    t.improved += count(v, Verdict::improved);
    t.inconclusive += count(v, Verdict::inconclusive);
  }
  return t;
}

void print(const char* what, const Tally& t) {
  std::printf("%-44s runs failed %4d/%-5d (%.2f%%), statistics regressed %.3f%%, improved %.3f%%, inconclusive %.1f%%\n",
              what, t.runs_failed, t.trials, 100.0 * t.runs_failed / t.trials, 100.0 * t.regressed / t.statistics,
              100.0 * t.improved / t.statistics, 100.0 * t.inconclusive / t.statistics);
}

// The most false alarms a rate of at most `rate` gives in `trials` trials,
// but for a chance of 1 in 1000 (binomial upper quantile).
int allowed(int trials, double rate) {
  double p = std::pow(1 - rate, trials), cdf = p;
  int k = 0;
  while (cdf < 0.999 && k < trials) {
    p *= (trials - k) * rate / ((k + 1) * (1 - rate));
    cdf += p;
    ++k;
  }
  return k;
}

}  // namespace

TEST(HistoryVerdicts, AnUnchangedCellFailsAtMostAtTheStatedRate) {
  HistoryOptions o;  // confidence 0.99, tolerance 10%
  const auto t = simulate(3000, 1, 30, o, 11, vm(), vm(), 1);
  print("1 cell, 30 runs, unchanged:", t);
  EXPECT_LE(t.runs_failed, allowed(t.trials, 0.01));
  EXPECT_LE(t.regressed, static_cast<std::size_t>(allowed(static_cast<int>(t.statistics), 0.01)));
  // Without the tolerance (practical significance off), the statistical part
  // alone: the stated rate still holds.
  o.tolerance_fraction = 0;
  const auto s = simulate(3000, 1, 30, o, 12, vm(), vm(), 1);
  print("1 cell, 30 runs, unchanged, no tolerance:", s);
  EXPECT_LE(s.runs_failed, allowed(s.trials, 0.01));
}

TEST(HistoryVerdicts, AThousandCellRunFailsNoMoreOftenThanOneCell) {
  HistoryOptions o;
  o.tolerance_fraction = 0;  // the statistics alone decide
  const auto one = simulate(3000, 1, 30, o, 21, vm(), vm(), 1);
  const auto many = simulate(100, 1000, 30, o, 22, vm(), vm(), 1);
  print("1 cell, no tolerance:", one);
  print("1,000 cells, no tolerance:", many);
  EXPECT_LE(many.runs_failed, allowed(many.trials, 0.01));
  EXPECT_LE(many.regressed, static_cast<std::size_t>(allowed(static_cast<int>(many.statistics), 0.01)));
  // Not beyond the 1-cell rate by more than the noise of 100 trials.
  const double rate_one = static_cast<double>(one.runs_failed) / one.trials;
  EXPECT_LE(many.runs_failed, allowed(many.trials, std::max(rate_one, 0.002)));
  // The correction is what holds it: without one, nearly every run fails.
  o.correction = Correction::none;
  const auto raw = simulate(10, 1000, 30, o, 23, vm(), vm(), 1);
  print("1,000 cells, no correction, no tolerance:", raw);
  EXPECT_GE(raw.runs_failed, 9);
}

TEST(HistoryVerdicts, LeaveOneOutOverEightRunsOfAnUnchangedSetup) {
  // Eight runs, each judged against the other seven: over many such sets the
  // fraction of comparisons that fail stays at the stated rate.
  HistoryOptions o;
  std::mt19937_64 rng(31);
  int comparisons = 0, failed = 0;
  std::size_t statistics = 0, regressed = 0;
  for (int set = 0; set < 400; ++set) {
    std::vector<SimRun> runs;
    for (int i = 0; i < 8; ++i) runs.push_back(draw(vm(), rng));
    for (int out = 0; out < 8; ++out) {
      std::vector<SimRun> others;
      for (int i = 0; i < 8; ++i)
        if (i != out) others.push_back(runs[i]);
      std::vector<StatisticTest> tests;
      add_cell(tests, others, runs[out], o);
      const auto v = judge(tests, o);
      ++comparisons;
      failed += count(v, Verdict::regressed) > 0;
      statistics += v.size();
      regressed += count(v, Verdict::regressed);
    }
  }
  std::printf("leave-one-out, 8 runs: %d/%d comparisons failed (%.2f%%), %.3f%% of statistics regressed\n", failed,
              comparisons, 100.0 * failed / comparisons, 100.0 * regressed / statistics);
  // The comparisons of one set share their runs (not independent): the
  // binomial bound is taken at twice the rate.
  EXPECT_LE(failed, allowed(comparisons, 0.02));
  EXPECT_LE(regressed, static_cast<std::size_t>(allowed(static_cast<int>(statistics), 0.01)));
}

TEST(HistoryVerdicts, DetectsATwiceWorseRunAndStressInEveryTrial) {
  HistoryOptions o;
  for (std::size_t runs : {8u, 30u}) {
    const auto twice = simulate(300, 1, runs, o, 41 + runs, vm(), vm(), 2);
    const auto stress = simulate(300, 1, runs, o, 51 + runs, vm(), stressed(), 1);
    print(runs == 8 ? "2x worse, 8 runs:" : "2x worse, 30 runs:", twice);
    print(runs == 8 ? "stress-ng beside the probe, 8 runs:" : "stress-ng beside the probe, 30 runs:", stress);
    EXPECT_EQ(stress.runs_failed, stress.trials);
    // 2x against runs that drift by 10% (sd): 8 runs estimate that spread too
    // loosely to call every such run at 0.99 (docs/statistics.md, "Power").
    if (runs == 8)
      EXPECT_GE(twice.runs_failed, twice.trials * 95 / 100);
    else
      EXPECT_EQ(twice.runs_failed, twice.trials);
  }
  // One 2x-worse cell among 1,000 unchanged ones is found too.
  std::mt19937_64 rng(61);
  std::vector<StatisticTest> tests;
  std::vector<SimRun> history(30);
  for (int c = 0; c < 1000; ++c) {
    for (auto& r : history) r = draw(vm(), rng);
    add_cell(tests, history, draw(vm(), rng, c == 500 ? 2 : 1), o);
  }
  const auto v = judge(tests, o);
  EXPECT_EQ(v[500 * 4].verdict, Verdict::regressed) << v[500 * 4].why;  // p50
  EXPECT_EQ(v[500 * 4 + 1].verdict, Verdict::regressed) << v[500 * 4 + 1].why;  // p99
}

TEST(HistoryVerdicts, CellsMadeTwiceWorseAreRegressedAndTheOthersAreNot) {
  // A run of 100 cells against 30 unchanged earlier runs, every 10th cell
  // with every latency doubled (simulate.hpp: the run scaled by 2), judged
  // as one family: over several seeds, the affected cells are `regressed`
  // (all but about 1 in 300: below); the others at most at the stated rate.
  HistoryOptions o;
  constexpr std::size_t kCells = 100, kRuns = 30;
  constexpr int kTrials = 40;
  int affected = 0, found = 0, unaffected = 0, false_alarms = 0, trials_with_false_alarm = 0, missed = 0, trials_missing = 0;
  for (std::uint64_t seed : {101u, 202u, 303u, 404u, 505u}) {
    std::mt19937_64 rng(seed);
    std::vector<SimRun> history(kRuns);
    for (int trial = 0; trial < kTrials; ++trial) {
      std::vector<StatisticTest> tests;
      for (std::size_t c = 0; c < kCells; ++c) {
        for (auto& r : history) r = draw(vm(), rng);
        add_cell(tests, history, draw(vm(), rng, c % 10 == 0 ? 2 : 1), o);
      }
      const auto v = judge(tests, o);
      int false_here = 0, missed_here = 0;
      for (std::size_t c = 0; c < kCells; ++c) {
        bool regressed = false;
        for (int s = 0; s < 4; ++s) regressed = regressed || v[c * 4 + s].verdict == Verdict::regressed;
        if (c % 10 == 0) {
          ++affected;
          found += regressed;
          if (!regressed && ++missed <= 3)
            std::printf("  missed: seed %llu trial %d cell %zu: p50 %.0f ns against a median of %.0f (p %.2g): %s\n",
                        static_cast<unsigned long long>(seed), trial, c, tests[c * 4].value_ns, tests[c * 4].center_ns,
                        tests[c * 4].p_regressed, v[c * 4].why.c_str());
          trials_missing += !regressed && !missed_here++;
        } else {
          ++unaffected;
          false_here += regressed;
        }
      }
      false_alarms += false_here;
      trials_with_false_alarm += false_here > 0;
    }
  }
  std::printf("2x worse cells among 100, 30 runs, 5 seeds x %d trials: %d/%d affected cells regressed, all of them in "
              "%d of %d trials; %d/%d unaffected cells regressed (%.3f%%), in %d of %d trials\n",
              kTrials, found, affected, 5 * kTrials - trials_missing, 5 * kTrials, false_alarms, unaffected,
              100.0 * false_alarms / unaffected, trials_with_false_alarm, 5 * kTrials);
  // Not every one: the new run drifts too (sd 10%), and a 2x run that drew
  // a slow-side drift of -2.5 sd is a 1.5x run whose p50 moved 3 or 4
  // buckets: about 1 affected cell in 300 stays within the prediction at
  // the corrected level (docs/statistics.md, "Power").
  EXPECT_GE(found, affected - allowed(affected, 0.005));
  // BH bounds the expected share of false ones among those called
  // regressed by 1 - confidence; per unaffected cell that is at most 1%.
  EXPECT_LE(false_alarms, allowed(unaffected, 0.01));
}

// Why maxima get their own model: across runs, log(max) of a heavy tail is
// Gumbel (right-skewed), and a normal prediction calls its right tail too
// often; the Gumbel pivot holds the stated level.
TEST(HistoryVerdicts, MaximaNeedTheGumbelModelNotTheNormalOne) {
  std::mt19937_64 rng(71);
  const int trials = 20000;
  const double level = 0.0025;  // alpha / 4 statistics: a one-cell run's first BH step
  int gumbel = 0, normal = 0;
  std::vector<double> h(30);
  HistoryOptions o;
  for (int t = 0; t < trials; ++t) {
    for (auto& v : h) v = draw(vm(), rng).v[3];
    const double now = draw(vm(), rng).v[3];
    gumbel += test_statistic(h, now, StatisticKind::maximum, 0, o).p_regressed <= level;
    normal += test_statistic(h, now, StatisticKind::percentile, 0, o).p_regressed <= level;
  }
  std::printf("max, p <= %.4f: Gumbel pivot %.3f%%, log-normal t %.3f%% (of %d)\n", level, 100.0 * gumbel / trials,
              100.0 * normal / trials, trials);
  EXPECT_LE(gumbel, allowed(trials, level));
  EXPECT_GT(normal, allowed(trials, level));
}

TEST(HistoryVerdicts, ThePivotIsCalibratedOnGumbelData) {
  // Exact Gumbel log values: P(p <= a) = a for every a (up to Monte Carlo).
  std::mt19937_64 rng(81);
  std::extreme_value_distribution<double> g(3.0, 0.7);
  for (std::size_t n : {5u, 30u}) {
    const int trials = 40000;
    int at[3] = {0, 0, 0};
    const double levels[3] = {0.1, 0.01, 0.001};
    std::vector<double> y(n);
    for (int t = 0; t < trials; ++t) {
      for (auto& v : y) v = g(rng);
      const auto [mu, beta] = gumbel_lmoments(y);
      const double p = gumbel_pivot_p_above(n, (g(rng) - mu) / beta);
      for (int i = 0; i < 3; ++i) at[i] += p <= levels[i];
    }
    for (int i = 0; i < 3; ++i) {
      const double expect = trials * levels[i], sd = std::sqrt(expect);
      EXPECT_NEAR(at[i], expect, 4 * sd + 0.05 * expect) << "n " << n << " level " << levels[i];
    }
  }
  // And the quantile inverts the tail probability.
  for (std::size_t n : {5u, 30u})
    for (double a : {0.05, 1e-4}) EXPECT_NEAR(gumbel_pivot_p_above(n, gumbel_pivot_quantile_above(n, a)) / a, 1, 0.02);
}

TEST(HistoryVerdicts, TheNormalPredictionIsStudentT) {
  // log values with known mean and sd: the p-value is the t(n-1) tail of
  // (y - mean) / (s sqrt(1 + 1/n)), computed here from its definition.
  const std::vector<double> h{100e3, 110e3, 95e3, 105e3, 102e3, 98e3};
  const double now = 130e3;
  const auto t = test_statistic(h, now, StatisticKind::percentile, 0, {});
  double mean = 0, ss = 0;
  for (double v : h) mean += std::log(v) / h.size();
  for (double v : h) ss += (std::log(v) - mean) * (std::log(v) - mean);
  const double s = std::sqrt(ss / (h.size() - 1)), n = static_cast<double>(h.size());
  const double stat = (std::log(now) - mean) / (s * std::sqrt(1 + 1 / n));
  const double p = boost::math::cdf(boost::math::complement(boost::math::students_t_distribution<double>(n - 1), stat));
  EXPECT_EQ(t.model, "lognormal-t");
  EXPECT_NEAR(t.p_regressed, p, 1e-9);
  EXPECT_NEAR(t.p_improved, 1 - p, 1e-9);
  EXPECT_NEAR(t.center_ns, 101e3, 1e-6);  // the median
  EXPECT_NEAR(t.allowed_ns, 10.1e3, 1e-6);
}

TEST(HistoryVerdicts, FewRunsUseTheToleranceRuleAndSaySo) {
  HistoryOptions o;
  std::vector<StatisticTest> tests{
      test_statistic(std::vector<double>{}, 100e3, StatisticKind::percentile, 1000, o),
      test_statistic(std::vector<double>{100e3}, 120e3, StatisticKind::percentile, 1000, o),
      test_statistic(std::vector<double>{100e3}, 105e3, StatisticKind::percentile, 1000, o),
      test_statistic(std::vector<double>{100e3, 200e3}, 80e3, StatisticKind::maximum, 0, o)};
  const auto v = judge(tests, o);
  EXPECT_EQ(v[0].verdict, Verdict::inconclusive);
  EXPECT_EQ(v[0].why, "no earlier run");
  EXPECT_EQ(v[1].verdict, Verdict::regressed);
  EXPECT_EQ(v[1].method, "tolerance");
  EXPECT_NE(v[1].why.find("cannot be judged"), std::string::npos);
  EXPECT_TRUE(std::isnan(v[1].confidence));
  EXPECT_EQ(v[2].verdict, Verdict::unchanged);
  EXPECT_EQ(v[3].verdict, Verdict::improved);  // 80 < median 150 - 15
}

TEST(HistoryVerdicts, AFamilyLargerThanTheTestsGivenCountsTheOthersAsNotSignificant) {
  // A regression gate judges one cell of a 1,000-statistic run on its own:
  // its p-value is corrected as if the 999 others were there, not significant.
  HistoryOptions o;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 0.1);
  std::vector<double> h(30);
  for (auto& v : h) v = 100e3 * std::exp(noise(rng));
  // Three prediction sds above the history (t(29): p ~ 0.003): below 0.01
  // alone, above 0.01 / 1000. Values are taken at their bucket's midpoint.
  double mean = 0, ss = 0;
  for (double v : h) mean += std::log(v + 500) / 30;
  for (double v : h) ss += (std::log(v + 500) - mean) * (std::log(v + 500) - mean);
  const double value = std::exp(mean + 3 * std::sqrt(ss / 29) * std::sqrt(1 + 1.0 / 30)) - 500;
  const std::vector<StatisticTest> tests{test_statistic(h, value, StatisticKind::percentile, 1000, o)};
  ASSERT_LT(tests[0].p_regressed, 0.01);
  ASSERT_GT(tests[0].p_regressed * 1000, 0.01);
  EXPECT_EQ(judge(tests, o)[0].verdict, Verdict::regressed);
  o.family_size = 1000;
  const auto v = judge(tests, o);
  EXPECT_NE(v[0].verdict, Verdict::regressed) << v[0].why;
  EXPECT_NEAR(v[0].p, std::min(1.0, tests[0].p_regressed * 1000), 1e-12);
  EXPECT_NE(v[0].method.find("over 1000 statistics"), std::string::npos) << v[0].method;
  // A family no larger than the tests given changes nothing.
  o.family_size = 1;
  EXPECT_EQ(judge(tests, o)[0].verdict, Verdict::regressed);
}

TEST(HistoryVerdicts, OneBucketIsNeverARegression) {
  // A percentile steady at 3 us in every run, now 4 us: one 1 us bucket.
  HistoryOptions o;
  std::vector<double> h(30, 3000);
  const std::vector<StatisticTest> tests{test_statistic(h, 4000, StatisticKind::percentile, 1000, o),
                                         test_statistic(h, 5000, StatisticKind::percentile, 1000, o)};
  const auto v = judge(tests, o);
  EXPECT_EQ(v[0].verdict, Verdict::unchanged) << v[0].why;
  EXPECT_EQ(v[1].verdict, Verdict::regressed) << v[1].why;
  EXPECT_GT(tests[0].p_regressed, 0);  // the quantum's variance: a flat history is not a spread of zero
}

TEST(HistoryVerdicts, ANoisyHistoryIsInconclusiveAndSaysWhatWouldHelp) {
  HistoryOptions o;
  std::mt19937_64 rng(91);
  std::normal_distribution<double> noise(0, 0.35);  // runs differ by +-40%
  std::vector<double> h(8), quiet(8);
  std::normal_distribution<double> small(0, 0.03);
  for (auto& v : h) v = 100e3 * std::exp(noise(rng));
  for (auto& v : quiet) v = 100e3 * std::exp(small(rng));
  const std::vector<StatisticTest> tests{test_statistic(h, 110e3, StatisticKind::percentile, 1000, o),
                                         test_statistic(quiet, 101e3, StatisticKind::percentile, 1000, o)};
  const auto v = judge(tests, o);
  EXPECT_EQ(v[0].verdict, Verdict::inconclusive);
  EXPECT_GT(v[0].detectable_ratio, o.detectable_ratio_limit);
  EXPECT_NE(v[0].why.find("too noisy"), std::string::npos) << v[0].why;
  EXPECT_EQ(v[1].verdict, Verdict::unchanged) << v[1].why;
  EXPECT_LT(v[1].detectable_ratio, 1.3);
  // runs_needed: with that many runs of the same spread, a change of the
  // limit is detectable; with one fewer it is not.
  if (v[0].runs_needed) {
    const double s = tests[0].scale, a = 0.01 / 2;
    auto limit_at = [&](double n) {
      return std::exp(tests[0].location +
                      boost::math::quantile(boost::math::students_t_distribution<double>(n - 1), 1 - a) * s *
                          std::sqrt(1 + 1 / n)) /
             tests[0].center_ns;
    };
    EXPECT_LE(limit_at(v[0].runs_needed), o.detectable_ratio_limit + 1e-3);
    EXPECT_GT(limit_at(v[0].runs_needed - 1), o.detectable_ratio_limit - 1e-3);
  } else {
    EXPECT_NE(v[0].why.find("no number of runs"), std::string::npos);
  }
}
