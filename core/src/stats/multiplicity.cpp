#include "multiplicity.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace vmlat::stats {

namespace {
constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// Indices of the finite p-values, sorted by p ascending (stable, so ties keep
// their order and the result does not depend on the sort's whims).
std::vector<std::size_t> sorted_members(std::span<const double> p) {
  std::vector<std::size_t> idx;
  idx.reserve(p.size());
  for (std::size_t i = 0; i < p.size(); ++i)
    if (!std::isnan(p[i])) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  return idx;
}
}  // namespace

std::string_view correction_name(Correction c) {
  switch (c) {
    case Correction::none: return "none";
    case Correction::holm: return "holm";
    case Correction::bh: return "benjamini-hochberg";
  }
  return "?";
}

// Holm (1979), as adjusted p-values (Wright 1992):
// p~(i) = max_{j<=i} min(1, (m - j + 1) p(j)).
std::vector<double> holm_adjusted(std::span<const double> p) {
  std::vector<double> out(p.size(), nan);
  const auto idx = sorted_members(p);
  const double m = static_cast<double>(idx.size());
  double running = 0;
  for (std::size_t j = 0; j < idx.size(); ++j) {
    running = std::max(running, std::min(1.0, (m - static_cast<double>(j)) * p[idx[j]]));
    out[idx[j]] = running;
  }
  return out;
}

// Benjamini & Hochberg (1995), as adjusted p-values:
// p~(i) = min_{j>=i} min(1, m p(j) / j).
std::vector<double> bh_adjusted(std::span<const double> p) {
  std::vector<double> out(p.size(), nan);
  const auto idx = sorted_members(p);
  const double m = static_cast<double>(idx.size());
  double running = 1.0;
  for (std::size_t j = idx.size(); j-- > 0;) {
    // m p / (j + 1) >= p; the max keeps rounding (m p / m) from going below p.
    running = std::min(running, std::max(p[idx[j]], m * p[idx[j]] / static_cast<double>(j + 1)));
    out[idx[j]] = running;
  }
  return out;
}

std::vector<double> adjusted(std::span<const double> p, Correction c) {
  switch (c) {
    case Correction::holm: return holm_adjusted(p);
    case Correction::bh: return bh_adjusted(p);
    case Correction::none: break;
  }
  return {p.begin(), p.end()};
}

}  // namespace vmlat::stats
