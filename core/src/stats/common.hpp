// Small helpers shared by the statistics' sources (not part of their API).
#pragma once

#include <algorithm>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/policies/policy.hpp>
#include <cmath>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace vmlat::stats::detail {

// Boost.Math evaluates double functions in long double by default; double is
// all these statistics need, at about half the cost.
using Policy = boost::math::policies::policy<boost::math::policies::promote_float<false>,
                                             boost::math::policies::promote_double<false>>;

// P(X >= x) for X ~ chi-square(df); NaN for a meaningless argument. An
// infinite statistic (a cell the model gives no chance at all) is p = 0:
// Boost.Math would throw on it.
inline double chi2_sf(double x, double df) {
  if (!(x >= 0) || !(df > 0)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) return 0;
  return boost::math::cdf(boost::math::complement(boost::math::chi_squared_distribution<double, Policy>(df), x));
}

// A number for a message: `precision` significant digits.
inline std::string fmt(double v, int precision = 3) {
  std::ostringstream s;
  s.precision(precision);
  s << v;
  return s.str();
}

inline double median(std::span<const double> x) {
  std::vector<double> v(x.begin(), x.end());
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace vmlat::stats::detail
