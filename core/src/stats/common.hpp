// Small helpers shared by the statistics' sources (not part of their API).
#pragma once

#include <algorithm>
#include <boost/math/policies/policy.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace vmlat::stats::detail {

// Boost.Math evaluates double functions in long double by default; double is
// all these statistics need, at about half the cost.
using Policy = boost::math::policies::policy<boost::math::policies::promote_float<false>,
                                             boost::math::policies::promote_double<false>>;

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
