// Confidence intervals of one cell's statistics, for claims that compare
// cells (docs/statistics.md, "Claims"): distribution-free order-statistic
// intervals of quantiles read from a 1 us histogram, a normal interval of the
// mean, and the tail model's return level where one fits.
// Depends on vmlat/histogram.hpp, tail.hpp, the standard library and Boost.Math only.
#pragma once

#include <cstdint>
#include <string>

#include "stats/tail.hpp"
#include "vmlat/histogram.hpp"

namespace vmlat::stats {

struct StatInterval {
  double value_ns = kNaN;  // the point estimate (NaN: none)
  double low_ns = kNaN, high_ns = kNaN;  // two-sided at the confidence asked; high may be +inf
  std::string method;      // "order-statistics", "normal", "gpd", "order-statistics (no tail model: ...)"
};

// The q-quantile's interval from the ranks of a binomial(n, q): with
// l = the largest rank with P(B < l) <= (1-c)/2 and u = the smallest with
// P(B >= u) <= (1-c)/2, the interval [x_(l), x_(u)] covers the quantile with
// probability >= c for independent samples of any continuous distribution
// (David & Nagaraja, Order Statistics, 3rd ed., 7.1). A rank is read from the
// histogram as its bucket's lower edge (low) or upper edge (high), within the
// exact extremes; a rank below 1 gives 0, above the bucketed samples +inf.
StatInterval quantile_interval(const Histogram& h, double q, double confidence);

// The mean's normal interval: sum/n +- z * sd / sqrt(n), the standard
// deviation from the bucket midpoints. NaN with overflows (values unknown).
StatInterval mean_interval(const Histogram& h, double confidence);

// The level exceeded once on average in `horizon_s` at the cell's sample
// rate: the tail model's return level and interval when `fit` is a fitted
// GPD, else the order-statistic interval of the quantile 1 - 1/(samples in
// the horizon) (whose upper limit is +inf unless the sample reaches far
// enough past it: a maximum without a model has no upper bound).
StatInterval level_interval(const TailFit& fit, const Histogram& h, double horizon_s, double confidence);

}  // namespace vmlat::stats
