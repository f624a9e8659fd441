// Extreme-value models of a latency tail (docs/statistics.md, "Tail model"):
//   - peaks over threshold: a generalised Pareto distribution (GPD) fitted to
//     the samples above a high threshold of one histogram, by the exact
//     likelihood of its 1 us buckets (grouped data), with a chi-square test of
//     fit; return levels (the worst case expected in 1 h, 24 h), the
//     exceedance rate of a bound, and how long a run must be to support it;
//   - block maxima: a GEV (or Gumbel) distribution fitted to the maxima of
//     equal windows (vmlat monitor's windows), with the same outputs.
// A model that is rejected, or a tail too thin to fit, falls back to the
// empirical maximum: no number is ever made up.
// Depends on vmlat/histogram.hpp, the standard library and Boost.Math only.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat::stats {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

enum class IntervalMethod {
  delta,    // Wald interval on the log scale (delta method): microseconds
  profile,  // profile likelihood: a few hundred likelihood evaluations more
};

struct TailOptions {
  // The threshold u is the highest bucket edge with at least
  // max(min_exceedances, (1 - threshold_quantile) * samples) samples at or above it.
  double threshold_quantile = 0.99;
  std::uint64_t min_exceedances = 50;
  // Cells of the grouped likelihood: whole buckets, at most max_cells, the
  // counts above their edges falling geometrically from the exceedances to 1
  // (the chi-square test merges them to an expected 10 samples each). 24
  // cells estimate the shape as well as the exact values would (sd 0.042 at
  // 600 exceedances, xi = 0, against 0.041), at a fifth of 1 us buckets' cost.
  std::size_t max_cells = 24;
  // The model is rejected when the chi-square test's p-value is below this.
  double gof_alpha = 0.01;
  // A fitted shape at or above this is not used (1: an infinite mean, a
  // mixture of populations rather than one tail; docs/statistics.md).
  double max_shape = 1.0;
  // Two-sided confidence of the intervals of return levels and rates.
  double confidence = 0.95;
  IntervalMethod interval = IntervalMethod::delta;
  std::vector<double> horizons_s{3600.0, 86400.0};
  // Bounds (a gate's bound) whose exceedance rate per hour is reported.
  std::vector<double> bounds_ns;
};

struct ReturnLevel {
  double horizon_s = 0;
  // The level exceeded once on average in horizon_s of measuring at the
  // cell's sample rate, and its interval (high_ns may be +inf: the data do
  // not bound it).
  double value_ns = kNaN, low_ns = kNaN, high_ns = kNaN;
};

struct BoundExceedance {
  double bound_ns = 0;
  // Samples at or above the bound per hour of measuring, with the interval.
  double per_hour = kNaN, per_hour_low = kNaN, per_hour_high = kNaN;
  std::string basis;          // "model" (above the threshold, GPD used) or "empirical"
  std::uint64_t observed = 0;  // samples of the run at or above the bound
};

struct TailFit {
  std::string method = "empirical";  // "gpd" when the model is used
  std::string reason;                // why not, when method is "empirical"
  std::uint64_t samples = 0;
  double duration_s = 0;
  double max_ns = kNaN;  // the exact maximum of the histogram
  // The fit, also when it was rejected (NaN when none was made).
  double threshold_ns = kNaN;
  std::uint64_t exceedances = 0;
  double sigma_ns = kNaN, xi = kNaN;
  double var_sigma = kNaN, cov_sigma_xi = kNaN, var_xi = kNaN;  // inverse Fisher information (sigma in ns)
  double loglik = kNaN;
  std::size_t cells = 0;
  double gof_statistic = kNaN, gof_p = kNaN;
  int gof_df = 0;
  double confidence = kNaN;
  std::string interval;  // "delta" or "profile"
  std::vector<ReturnLevel> return_levels;    // empty unless method is "gpd"
  std::vector<BoundExceedance> bound_exceedance;
  // The grouped data of the fit: cell lower edges in us above the threshold
  // (the first is 0, the last cell is open) and their counts.
  std::vector<double> edges_us, counts;

  bool fitted() const { return method == "gpd"; }
};

// Fits the tail of `h` (duration_s: the time the histogram's samples were
// measured over; rates and horizons need it). Never throws on data.
TailFit fit_tail(const Histogram& h, double duration_s, const TailOptions& options = {});

// The return level of a fitted tail for another horizon (NaN when !fitted()).
ReturnLevel return_level(const TailFit& fit, double horizon_s, double confidence,
                         IntervalMethod method = IntervalMethod::delta);
// The exceedance rate of a bound: from the model above the threshold when
// fitted, else from the histogram's count (Poisson interval, Garwood 1936).
BoundExceedance bound_exceedance(const TailFit& fit, const Histogram& h, double bound_ns, double confidence,
                                 IntervalMethod method = IntervalMethod::delta);

// "How long to run" (docs/statistics.md): T = ln(1/(1-c)) / lambda_low(b),
// the shortest run that exceeds `bound_ns` with probability >= c if the
// system's exceedance rate is at least lambda_low (the one-sided lower
// confidence limit of the rate at c). A passing run shorter than T is no
// evidence at confidence c that the bound holds.
struct RunLength {
  double bound_ns = 0, confidence = 0;
  double seconds = kNaN;  // +inf: the rate's lower limit is 0 (beyond the fitted endpoint)
  bool at_least = false;  // no exceedance was seen: only a lower bound (the measured duration) is known
  std::string basis;      // "model" or "empirical"
};
// The profile-likelihood limit by default: this is asked once per gate, not
// per cell, and its one-sided coverage is the better (docs/statistics.md).
RunLength run_length_for_bound(const TailFit& fit, const Histogram& h, double bound_ns, double confidence,
                               IntervalMethod method = IntervalMethod::profile);
// The zero-failure demonstration length: a run of this length without an
// exceedance shows at confidence c that the rate is below per_hour.
double run_length_for_rate(double per_hour, double confidence);

// {method, reason, threshold_ns, exceedances, gof_p, return_levels: [{horizon, value_ns, low_ns, high_ns}],
//  bound_exceedance: [{bound_ns, per_hour, ...}], ...}; non-finite numbers are null.
json to_json(const TailFit& fit);

// Block maxima of equal windows (e.g. the monitor's per-window maxima).
struct BlockMaximaFit {
  std::string method = "empirical";  // "gev", "gumbel" (xi = 0 not rejected), or "empirical"
  std::string reason;
  std::size_t blocks = 0;
  double block_s = 0;
  double max_ns = kNaN;
  double mu_ns = kNaN, sigma_ns = kNaN, xi = kNaN;
  double loglik = kNaN;
  double gumbel_lr_p = kNaN;  // likelihood-ratio test of xi = 0
  std::size_t cells = 0;
  double gof_statistic = kNaN, gof_p = kNaN;
  int gof_df = 0;
  double confidence = kNaN;
  std::vector<ReturnLevel> return_levels;
  // Covariance of (mu_ns, log sigma, xi) (xi's row and column are 0 for Gumbel).
  double cov[3][3] = {};
  bool fitted() const { return method == "gev" || method == "gumbel"; }
};
BlockMaximaFit fit_block_maxima(std::span<const double> maxima_ns, double block_s, const TailOptions& options = {});
json to_json(const BlockMaximaFit& fit);

// The GEV log-likelihood and its maximum-likelihood fit without model choice
// or test (the scipy cross-check uses them): x in any unit, xi != 0 allowed.
struct GevParams {
  double mu = kNaN, sigma = kNaN, xi = kNaN, loglik = kNaN;
};
double gev_loglik(std::span<const double> x, double mu, double sigma, double xi);
GevParams fit_gev(std::span<const double> x);
GevParams fit_gumbel(std::span<const double> x);

}  // namespace vmlat::stats
