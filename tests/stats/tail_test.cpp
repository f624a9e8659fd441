// The tail model (core/src/stats/tail.hpp) on samples from a known mechanism:
// parameters recovered, intervals that cover the true return levels and
// rates, rejection and fallback, block maxima.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "simulate.hpp"
#include "stats/tail.hpp"

using namespace vmlat;
using namespace vmlat::stats;
using std::chrono::nanoseconds;

namespace {

constexpr double kRate = 1000;  // samples per second: a 1 ms period

TailOptions options(IntervalMethod m = IntervalMethod::delta) {
  TailOptions o;
  o.interval = m;
  return o;
}

}  // namespace

TEST(TailFit, RecoversAKnownGeneralisedParetoTail) {
  sim::Latency lat;
  lat.sigma_us = 12;
  lat.xi = 0.25;
  std::mt19937_64 rng(1);
  const std::size_t n = 400000;
  const auto h = lat.histogram(n, rng);
  const auto f = fit_tail(h, n / kRate, options());
  ASSERT_EQ(f.method, "gpd") << f.reason;
  // The threshold is above u0, where the tail is GPD with the same shape and
  // scale sigma + xi (u - u0) (threshold stability).
  const double u_us = f.threshold_ns / 1000;
  ASSERT_GE(u_us, lat.u0_us);
  const double sigma_u = lat.sigma_us + lat.xi * (u_us - lat.u0_us);
  EXPECT_NEAR(f.xi, lat.xi, 4 * std::sqrt(f.var_xi));
  EXPECT_NEAR(f.sigma_ns / 1000, sigma_u, 4 * std::sqrt(f.var_sigma) / 1000);
  EXPECT_LT(std::sqrt(f.var_xi), 0.06);
  EXPECT_EQ(f.samples, n);
  EXPECT_GE(f.exceedances, 50u);
  EXPECT_NEAR(static_cast<double>(f.exceedances) / n, 0.01, 0.005);
  EXPECT_GT(f.gof_p, 0.001);
  EXPECT_GE(f.gof_df, 1);
  ASSERT_EQ(f.return_levels.size(), 2u);
  EXPECT_EQ(f.return_levels[0].horizon_s, 3600);
  EXPECT_EQ(f.return_levels[1].horizon_s, 86400);
  for (const auto& r : f.return_levels) {
    EXPECT_LT(r.low_ns, r.value_ns);
    EXPECT_LT(r.value_ns, r.high_ns);
  }
  EXPECT_LT(f.return_levels[0].value_ns, f.return_levels[1].value_ns);
  // The 1 h level lies beyond this 400 s run's max, not at it.
  EXPECT_GT(f.return_levels[0].value_ns, f.max_ns);
}

// Coverage: the true return levels (1 h, 24 h) inside the fitted intervals
// (95%) for >= 90% of seeds, for several shapes, both interval methods; and
// the exceedance rate of a bound near the run's own max.
class TailCoverage : public ::testing::TestWithParam<double> {};

TEST_P(TailCoverage, IntervalsCoverTheTruth) {
  const double xi = GetParam();
  sim::Latency lat;
  lat.xi = xi;
  lat.sigma_us = 10;
  const std::size_t n = 60000;  // a 1-minute cell at 1 ms
  const int seeds = 200;
  struct Tally {
    int in_1h = 0, in_24h = 0, in_rate = 0, rates = 0;
  } tally[2];
  int fitted = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    std::mt19937_64 rng(1000 + seed);
    const auto h = lat.histogram(n, rng);
    const double bound_us = lat.return_level_us(n);  // about the run's own max
    const double t1 = lat.return_level_us(3600 * kRate) * 1000, t24 = lat.return_level_us(86400 * kRate) * 1000;
    const double rate = lat.survival(bound_us) * kRate * 3600;
    for (int m = 0; m < 2; ++m) {
      auto o = options(m ? IntervalMethod::profile : IntervalMethod::delta);
      o.bounds_ns = {bound_us * 1000};
      const auto f = fit_tail(h, n / kRate, o);
      if (!f.fitted()) continue;
      fitted += m == 0;
      auto& t = tally[m];
      t.in_1h += f.return_levels[0].low_ns <= t1 && t1 <= f.return_levels[0].high_ns;
      t.in_24h += f.return_levels[1].low_ns <= t24 && t24 <= f.return_levels[1].high_ns;
      const auto& b = f.bound_exceedance.at(0);
      if (b.basis == "model") {
        ++t.rates;
        t.in_rate += b.per_hour_low <= rate && rate <= b.per_hour_high;
      }
    }
  }
  for (int m = 0; m < 2; ++m) {
    const auto& t = tally[m];
    std::printf("xi %+.2f %-7s: fitted %d/%d, covered: 1h %.1f%%, 24h %.1f%%, rate of a bound %.1f%% (of %d)\n", xi,
                m ? "profile" : "delta", fitted, seeds, 100.0 * t.in_1h / fitted, 100.0 * t.in_24h / fitted,
                t.rates ? 100.0 * t.in_rate / t.rates : 0.0, t.rates);
    EXPECT_GE(t.in_1h, fitted * 9 / 10);
    EXPECT_GE(t.in_24h, fitted * 9 / 10);
    EXPECT_GE(t.in_rate, t.rates * 9 / 10);
    EXPECT_GE(t.rates, fitted * 9 / 10);
  }
  // The model is right here: the chi-square test rejects it about 1% of the
  // time (gof_alpha), never most of the time.
  EXPECT_GE(fitted, seeds * 9 / 10);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TailCoverage, ::testing::Values(-0.2, 0.0, 0.2, 0.4));
