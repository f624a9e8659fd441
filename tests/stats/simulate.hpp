// Simulated latency from a known mechanism, for the statistics' tests and
// benchmark (docs/statistics.md, "Validation"): a body (log-normal below u0)
// and a generalised Pareto tail above u0 with probability zeta0, so that every
// tail quantity has a known true value.
#pragma once

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>

#include "stats/common.hpp"
#include "vmlat/histogram.hpp"

namespace vmlat::stats::sim {

struct Latency {
  double body_median_us = 8, body_sigma = 0.25;  // log-normal body, truncated below u0
  double u0_us = 20, zeta0 = 0.03;               // P(X > u0)
  double sigma_us = 6, xi = 0.2;                 // GPD of X - u0 above u0

  // P(X > x) for x >= u0.
  double survival(double x_us) const {
    const double y = x_us - u0_us;
    if (y <= 0) return 1;  // not used below u0
    if (std::abs(xi) < 1e-12) return zeta0 * std::exp(-y / sigma_us);
    const double t = 1 + xi * y / sigma_us;
    return t <= 0 ? 0 : zeta0 * std::pow(t, -1 / xi);
  }
  // The level exceeded once on average in `samples` samples.
  double return_level_us(double samples) const {
    const double m = samples * zeta0;
    if (std::abs(xi) < 1e-12) return u0_us + sigma_us * std::log(m);
    return u0_us + sigma_us / xi * (std::pow(m, xi) - 1);
  }
  // The value whose survival is s <= zeta0 (exact in the far tail).
  double upper_quantile_us(double s) const {
    const double w = s / zeta0;  // survival within the tail
    if (std::abs(xi) < 1e-12) return u0_us - sigma_us * std::log(w);
    return u0_us + sigma_us / xi * (std::pow(w, -xi) - 1);
  }
  // The quantile function (used for exact order statistics).
  double quantile_us(double p) const {
    if (p > 1 - zeta0) return upper_quantile_us(1 - p);
    const boost::math::normal_distribution<double, detail::Policy> nd;
    const double mu = std::log(body_median_us);
    const double top = boost::math::cdf(nd, (std::log(u0_us) - mu) / body_sigma);
    const double v = std::clamp(p / (1 - zeta0), 1e-300, 1.0);
    return std::exp(mu + body_sigma * boost::math::quantile(nd, std::min(v * top, 1 - 1e-16)));
  }

  // A histogram of n samples: the tail's samples drawn one by one (exact
  // values, so the max is exact), the body's counts per 1 us bucket drawn
  // as a multinomial (sequential binomials: exact, and n need not be drawn).
  Histogram histogram(std::size_t n, std::mt19937_64& rng) const {
    Histogram h;
    const auto tail = std::binomial_distribution<std::uint64_t>(n, zeta0)(rng);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    for (std::uint64_t i = 0; i < tail; ++i) {
      const double u = 1 - unif(rng);
      h.add(std::chrono::nanoseconds(static_cast<long long>(upper_quantile_us(u * zeta0) * 1000)));
    }
    const boost::math::normal_distribution<double, detail::Policy> nd;
    const double mu = std::log(body_median_us);
    auto cdf = [&](double x) { return x <= 0 ? 0.0 : boost::math::cdf(nd, (std::log(x) - mu) / body_sigma); };
    const double top = cdf(u0_us);
    std::uint64_t left = n - tail;
    double mass_left = 1;
    for (int b = 0; left > 0; ++b) {
      const double hi = std::min<double>(b + 1, u0_us);
      const double p = (cdf(hi) - cdf(b)) / top;
      const auto c = hi >= u0_us ? left : std::binomial_distribution<std::uint64_t>(left, std::clamp(p / mass_left, 0.0, 1.0))(rng);
      if (c) h.add(std::chrono::nanoseconds(b * 1000 + 500), c);
      left -= c;
      mass_left -= p;
    }
    return h;
  }
};

// The statistics vmlat compares, of one simulated run of n samples, drawn
// exactly from their joint distribution (uniform order statistics as ratios
// of gamma sums, Renyi 1953), without drawing the n samples: percentiles as
// vmlat reports them (nearest rank, the 1 us bucket's lower edge), max exact.
struct RunStats {
  double p50_ns, p99_ns, p999_ns, max_ns;
};
inline RunStats run_stats(const Latency& lat, std::uint64_t n, std::mt19937_64& rng, double scale = 1) {
  const auto rank = [&](double q) { return static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n) - 1e-9)); };
  const std::uint64_t r1 = rank(0.5), r2 = rank(0.99), r3 = rank(0.999);
  auto gamma = [&](double k) { return std::gamma_distribution<double>(k, 1.0)(rng); };
  const double g1 = gamma(static_cast<double>(r1)), g2 = gamma(static_cast<double>(r2 - r1)),
               g3 = gamma(static_cast<double>(r3 - r2)), g4 = gamma(static_cast<double>(n - r3)), g5 = gamma(1);
  const double total = g1 + g2 + g3 + g4 + g5;
  // U_(r) = G_r / G_{n+1}; the max's survival 1 - U_(n) = g5 / total, kept
  // exact by computing it directly rather than as 1 - U.
  auto edge = [&](double x_us) { return std::floor(x_us * scale) * 1000; };
  RunStats s;
  s.p50_ns = edge(lat.quantile_us(g1 / total));
  s.p99_ns = edge(lat.quantile_us((g1 + g2) / total));
  s.p999_ns = edge(lat.quantile_us((g1 + g2 + g3) / total));
  const double surv = g5 / total;
  s.max_ns = (surv < lat.zeta0 ? lat.upper_quantile_us(surv) : lat.quantile_us(1 - surv)) * scale * 1000;
  return s;
}

}  // namespace vmlat::stats::sim
