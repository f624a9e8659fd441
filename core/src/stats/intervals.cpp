#include "intervals.hpp"

#include <algorithm>
#include <boost/math/distributions/binomial.hpp>
#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <limits>

#include "stats/common.hpp"

namespace vmlat::stats {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 1 + the largest k in [0, n] with cdf(k) <= p, or 0 when there is none.
std::uint64_t first_rank_above(const boost::math::binomial_distribution<double, detail::Policy>& b, std::uint64_t n, double p) {
  if (boost::math::cdf(b, 0.0) > p) return 0;
  std::uint64_t lo = 0, hi = n;  // cdf(lo) <= p < cdf(hi) = 1
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    (boost::math::cdf(b, static_cast<double>(mid)) <= p ? lo : hi) = mid;
  }
  return lo + 1;
}

// 1 + the smallest k in [0, n] with cdf(k) >= p.
std::uint64_t last_rank_below(const boost::math::binomial_distribution<double, detail::Policy>& b, std::uint64_t n, double p) {
  if (boost::math::cdf(b, 0.0) >= p) return 1;
  std::uint64_t lo = 0, hi = n;  // cdf(lo) < p <= cdf(hi)
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    (boost::math::cdf(b, static_cast<double>(mid)) >= p ? hi : lo) = mid;
  }
  return hi + 1;
}

// The bucket holding the r-th smallest bucketed sample (1-based), or none.
const std::pair<const std::uint64_t, std::uint64_t>* bucket_of_rank(const Histogram& h, std::uint64_t r) {
  std::uint64_t seen = 0;
  for (const auto& entry : h.buckets()) {
    seen += entry.second;
    if (seen >= r) return &entry;
  }
  return nullptr;
}

double lower_edge(const Histogram& h, std::uint64_t bucket) {
  return std::max(static_cast<double>(bucket) * 1000, static_cast<double>(h.min().count()));
}
double upper_edge(const Histogram& h, std::uint64_t bucket) {
  return std::min(static_cast<double>(bucket + 1) * 1000, static_cast<double>(h.max().count()));
}

}  // namespace

StatInterval quantile_interval(const Histogram& h, double q, double confidence) {
  StatInterval out;
  out.method = "order-statistics";
  const std::uint64_t n = h.samples();
  if (n == 0 || !(q > 0 && q < 1)) return out;
  out.value_ns = static_cast<double>(h.percentile(q).count());
  const double alpha = 1 - confidence;
  const boost::math::binomial_distribution<double, detail::Policy> b(static_cast<double>(n), q);
  const std::uint64_t l = first_rank_above(b, n, alpha / 2);
  const std::uint64_t u = last_rank_below(b, n, 1 - alpha / 2);
  const std::uint64_t bucketed = n - h.overflows();
  if (l == 0) out.low_ns = 0;
  else if (l > bucketed) out.low_ns = h.buckets().empty() ? 0 : upper_edge(h, h.buckets().rbegin()->first);
  else out.low_ns = lower_edge(h, bucket_of_rank(h, l)->first);
  if (u > bucketed) out.high_ns = kInf;
  else out.high_ns = upper_edge(h, bucket_of_rank(h, u)->first);
  out.high_ns = std::max(out.high_ns, out.value_ns);  // the extremes' clamp can cross within one bucket
  out.low_ns = std::min(out.low_ns, out.value_ns);
  return out;
}

StatInterval mean_interval(const Histogram& h, double confidence) {
  StatInterval out;
  out.method = "normal";
  const std::uint64_t n = h.samples();
  if (n < 2 || h.overflows()) return out;
  const double mean = static_cast<double>(h.sum().count()) / static_cast<double>(n);
  double ss = 0;
  for (const auto& [bucket, count] : h.buckets()) {
    const double mid = std::clamp((static_cast<double>(bucket) + 0.5) * 1000, static_cast<double>(h.min().count()),
                                  static_cast<double>(h.max().count()));
    ss += static_cast<double>(count) * (mid - mean) * (mid - mean);
  }
  const double se = std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
  const double z = boost::math::quantile(boost::math::normal_distribution<double, detail::Policy>(), (1 + confidence) / 2);
  out.value_ns = mean;
  out.low_ns = mean - z * se;
  out.high_ns = mean + z * se;
  return out;
}

StatInterval level_interval(const TailFit& fit, const Histogram& h, double horizon_s, double confidence) {
  StatInterval out;
  if (fit.fitted()) {
    const ReturnLevel r = return_level(fit, horizon_s, confidence);
    if (!std::isnan(r.value_ns)) {
      out.method = "gpd";
      out.value_ns = r.value_ns;
      out.low_ns = r.low_ns;
      out.high_ns = r.high_ns;
      return out;
    }
  }
  const std::uint64_t n = h.samples();
  const std::string why = fit.fitted() ? "the horizon is below the tail model's threshold"
                                       : "no tail model" + (fit.reason.empty() ? std::string() : ": " + fit.reason);
  out.method = "order-statistics (" + why + ")";
  if (n == 0 || !(fit.duration_s > 0) || !(horizon_s > 0)) return out;
  const double in_horizon = static_cast<double>(n) / fit.duration_s * horizon_s;
  if (!(in_horizon > 1)) return out;
  out = quantile_interval(h, 1 - 1 / in_horizon, confidence);
  out.method = "order-statistics (" + why + ")";
  // A horizon of the whole measurement or more: the measured max is the point estimate.
  if (in_horizon >= static_cast<double>(n)) out.value_ns = static_cast<double>(h.max().count());
  return out;
}

}  // namespace vmlat::stats
