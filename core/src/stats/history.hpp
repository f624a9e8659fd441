// Verdicts of a new run against a history of earlier runs (docs/statistics.md,
// "Verdicts against a history"): per (cell, statistic), a prediction p-value
// of the new value from the earlier runs' values, then one multiplicity
// correction over every statistic of the run, then practical significance
// (the tolerance) and detectability.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stats/multiplicity.hpp"
#include "stats/tail.hpp"
#include "vmlat/json.hpp"

namespace vmlat::stats {

enum class Verdict { regressed, improved, unchanged, inconclusive };
std::string_view verdict_name(Verdict v);

// The model of a statistic's spread across runs.
enum class StatisticKind {
  percentile,  // log value normal across runs: Student t prediction
  maximum,     // log value Gumbel across runs (a block maximum): pivotal prediction
};

struct HistoryOptions {
  double confidence = 0.99;  // 1 - the run-level false-alarm rate
  // Fewer earlier runs than this: the tolerance rule alone (no spread).
  std::size_t min_runs = 3;
  // Practical significance, as core/src/regression.hpp's Tolerance: a change
  // must exceed max(fraction * center or absolute, resolution) to count.
  bool tolerance_relative = true;
  double tolerance_fraction = 0.10;
  double tolerance_ns = 0;
  // A statistic that is not significant is `unchanged` only when a change of
  // this ratio would have been detected; else `inconclusive`.
  double detectable_ratio_limit = 2.0;
  Correction correction = Correction::bh;
  // The size of the family when it is larger than the tests given to judge():
  // a regression gate judges each cell as it is measured, before the others
  // exist; the members not given count as not significant (p = 1), so a lone
  // test's adjusted p is min(1, p * family_size) under BH and Holm alike.
  std::size_t family_size = 0;
  // runs_needed is searched up to this many runs.
  std::size_t max_runs_needed = 200;
};

// One statistic of one cell, before the multiplicity correction.
struct StatisticTest {
  StatisticKind kind = StatisticKind::percentile;
  std::string model;  // "lognormal-t", "loggumbel-pivot", "tolerance" (too few runs), "none" (no history)
  std::size_t runs = 0;
  double value_ns = kNaN;
  double center_ns = kNaN;      // the median of the history
  double allowed_ns = kNaN;     // the practical threshold above/below center_ns
  double resolution_ns = 0;     // 1000 for percentiles (1 us buckets), 0 for exact values
  double location = kNaN, scale = kNaN;  // on the log scale: mean and sd, or Gumbel mu and beta
  double p_regressed = kNaN, p_improved = kNaN;  // one-sided, unadjusted
};

// `history_ns`: the statistic in each earlier run (order irrelevant);
// `resolution_ns`: the statistic's quantum (1000 for a percentile of 1 us
// buckets, 0 for max).
StatisticTest test_statistic(std::span<const double> history_ns, double value_ns, StatisticKind kind,
                             double resolution_ns, const HistoryOptions& options = {});

struct StatisticVerdict {
  Verdict verdict = Verdict::inconclusive;
  double confidence = kNaN;  // NaN for the tolerance rule
  std::string method;        // e.g. "lognormal-t, benjamini-hochberg over 4000 statistics"
  double p = kNaN;           // adjusted p-value of the verdict's direction (regressed, improved), else of regression
  double detectable_ratio = kNaN;  // smallest value/center this history could call regressed on its own
  std::size_t runs_needed = 0;     // inconclusive for noise: earlier runs that would make the limit detectable (0: none up to max_runs_needed)
  std::string why;
};

// Verdicts for every statistic of a run: `tests` is the whole family (all
// cells, all statistics); the correction runs over those with a model.
std::vector<StatisticVerdict> judge(std::span<const StatisticTest> tests, const HistoryOptions& options = {});

json to_json(const StatisticTest& test, const StatisticVerdict& verdict);

// The pivotal prediction of a Gumbel location-scale family (exposed for tests
// and the benchmark): Q = (Y_new - mu^) / beta^ with L-moment estimates from n
// runs has a distribution free of (mu, beta); P(Q > q), P(Q < q) and its upper
// quantile by Monte Carlo over 4000 standard samples (fixed seed),
// Rao-Blackwellised over Y_new.
double gumbel_pivot_p_above(std::size_t n, double q);
double gumbel_pivot_p_below(std::size_t n, double q);
double gumbel_pivot_quantile_above(std::size_t n, double alpha);
// L-moment estimates (Hosking 1990) of a Gumbel sample: {mu, beta}.
std::pair<double, double> gumbel_lmoments(std::span<const double> x);

}  // namespace vmlat::stats
