#include "history.hpp"

#include <algorithm>
#include <array>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <tuple>

#include "stats/common.hpp"

namespace vmlat::stats {

using detail::fmt;
using detail::median;
using detail::Policy;

namespace {

constexpr double kEulerGamma = 0.57721566490153286;

double t_sf(double t, double df) {
  return boost::math::cdf(boost::math::complement(boost::math::students_t_distribution<double, Policy>(df), t));
}
double t_quantile(double p, double df) { return boost::math::quantile(boost::math::students_t_distribution<double, Policy>(df), p); }
double z_quantile(double p) { return boost::math::quantile(boost::math::normal_distribution<double, Policy>(), p); }

// The log scale of a statistic: a percentile is a bucket's lower edge, its
// midpoint (v + res/2) is the value it stands for (and keeps 0 finite).
double log_value(double v, double resolution) { return std::log(std::max(v + resolution / 2, 1.0)); }

// Monte Carlo draws of the L-moment estimates from standard Gumbel samples of
// size n, and a grid of the pivot's tail probabilities (interpolated in
// asinh(q), log p). Built once per n, on first use.
class GumbelPivot {
 public:
  static constexpr std::size_t kDraws = 4000;
  static const GumbelPivot& of(std::size_t n) {
    static std::mutex mu;
    static std::map<std::size_t, std::unique_ptr<GumbelPivot>> cache;
    std::lock_guard lock(mu);
    auto& slot = cache[n];
    if (!slot) slot.reset(new GumbelPivot(n));
    return *slot;
  }

  double p_above(double q) const {
    std::call_once(grid_once_, [this] { build_grid(); });
    return interpolate(log_up_, q);
  }
  double p_below(double q) const {
    std::call_once(grid_once_, [this] { build_grid(); });
    return interpolate(log_down_, q);
  }

  // The q with P(Q > q) = alpha, by bisection on the draws themselves (not
  // the grid), so that it is exact to the Monte Carlo; memoised (a run's
  // statistics ask for one or two levels).
  double quantile_above(double alpha) const {
    std::lock_guard lock(quantile_mutex_);
    auto [it, fresh] = quantiles_.try_emplace(alpha, 0.0);
    if (!fresh) return it->second;
    double lo = -50, hi = 1e6;
    for (int i = 0; i < 100 && hi - lo > 1e-6 * (1 + std::abs(lo)); ++i) {
      const double mid = (lo + hi) / 2;
      (exact_above(mid) > alpha ? lo : hi) = mid;
    }
    return it->second = (lo + hi) / 2;
  }

 private:
  explicit GumbelPivot(std::size_t n) {
    std::mt19937_64 rng(0x9e3779b97f4a7c15ULL ^ n);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    std::vector<double> x(n);
    mu_.resize(kDraws);
    beta_.resize(kDraws);
    for (std::size_t d = 0; d < kDraws; ++d) {
      for (auto& v : x) {
        double u;
        do u = unif(rng);
        while (u <= 0);
        v = -std::log(-std::log(u));
      }
      std::tie(mu_[d], beta_[d]) = gumbel_lmoments(x);
    }
  }

  // The grid is built on the first p-value (runs_needed's searches only ask
  // for quantiles).
  void build_grid() const {
    for (std::size_t i = 0; i < kGrid; ++i) {
      const double q = std::sinh(kTMin + (kTMax - kTMin) * static_cast<double>(i) / (kGrid - 1));
      double up = 0, down = 0;
      for (std::size_t d = 0; d < kDraws; ++d) {
        const double z = mu_[d] + q * beta_[d];
        const double e = std::exp(-z);
        up += -std::expm1(-e);  // S(z) = 1 - exp(-e^-z)
        down += std::exp(-e);   // F(z)
      }
      log_up_[i] = std::log(std::max(up / kDraws, 1e-300));
      log_down_[i] = std::log(std::max(down / kDraws, 1e-300));
    }
  }

  double exact_above(double q) const {
    double up = 0;
    for (std::size_t d = 0; d < kDraws; ++d) up += -std::expm1(-std::exp(-(mu_[d] + q * beta_[d])));
    return up / kDraws;
  }

  template <typename A>
  static double interpolate(const A& log_p, double q) {
    const double t = std::asinh(q);
    const double x = (t - kTMin) / (kTMax - kTMin) * (kGrid - 1);
    if (x <= 0) return std::exp(log_p[0]);
    if (x >= kGrid - 1) return std::exp(log_p[kGrid - 1]);
    const auto i = static_cast<std::size_t>(x);
    const double w = x - static_cast<double>(i);
    return std::exp(log_p[i] * (1 - w) + log_p[i + 1] * w);
  }

  // q from -2000 to 2000, finer near 0 (asinh): beyond, the end value (a
  // conservative p: larger than the truth in the tails).
  static constexpr std::size_t kGrid = 400;
  static constexpr double kTMin = -8.294, kTMax = 8.294;
  std::vector<double> mu_, beta_;
  mutable std::once_flag grid_once_;
  mutable std::mutex quantile_mutex_;
  mutable std::map<double, double> quantiles_;
  mutable std::array<double, kGrid> log_up_{}, log_down_{};
};

}  // namespace

std::pair<double, double> gumbel_lmoments(std::span<const double> x) {
  std::vector<double> s(x.begin(), x.end());
  std::sort(s.begin(), s.end());
  const double n = static_cast<double>(s.size());
  double b0 = 0, b1 = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    b0 += s[i];
    b1 += static_cast<double>(i) / (n - 1) * s[i];
  }
  b0 /= n;
  b1 /= n;
  const double beta = (2 * b1 - b0) / std::log(2.0);
  return {b0 - kEulerGamma * beta, beta};
}

double gumbel_pivot_p_above(std::size_t n, double q) { return GumbelPivot::of(n).p_above(q); }
double gumbel_pivot_p_below(std::size_t n, double q) { return GumbelPivot::of(n).p_below(q); }
double gumbel_pivot_quantile_above(std::size_t n, double alpha) { return GumbelPivot::of(n).quantile_above(alpha); }

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::regressed: return "regressed";
    case Verdict::improved: return "improved";
    case Verdict::unchanged: return "unchanged";
    case Verdict::inconclusive: return "inconclusive";
  }
  return "?";
}

StatisticTest test_statistic(std::span<const double> history_ns, double value_ns, StatisticKind kind,
                             double resolution_ns, const HistoryOptions& o) {
  StatisticTest t;
  t.kind = kind;
  t.runs = history_ns.size();
  t.value_ns = value_ns;
  t.resolution_ns = resolution_ns;
  if (history_ns.empty()) {
    t.model = "none";
    return t;
  }
  std::vector<double> h(history_ns.begin(), history_ns.end());
  t.center_ns = median(h);
  t.allowed_ns = std::max(o.tolerance_relative ? o.tolerance_fraction * t.center_ns : o.tolerance_ns, resolution_ns);
  if (t.runs < std::max<std::size_t>(o.min_runs, 3)) {
    t.model = "tolerance";
    return t;
  }
  const double n = static_cast<double>(t.runs);
  std::vector<double> y(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) y[i] = log_value(h[i], resolution_ns);
  const double y_new = log_value(value_ns, resolution_ns);
  if (kind == StatisticKind::percentile) {
    // Prediction of one more exchangeable normal draw: (y - mean) /
    // (s sqrt(1 + 1/n)) ~ t(n-1). The quantum's uniform rounding variance
    // (h^2/12 on the log scale) is added so that a history of identical
    // values is not taken for a spread of zero.
    t.model = "lognormal-t";
    const double mean = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double ss = 0;
    for (double v : y) ss += (v - mean) * (v - mean);
    const double quantum = resolution_ns / std::max(t.center_ns + resolution_ns / 2, 1.0);
    const double s = std::sqrt(ss / (n - 1) + quantum * quantum / 12);
    t.location = mean;
    t.scale = std::max(s, 1e-12);
    const double stat = (y_new - mean) / (t.scale * std::sqrt(1 + 1 / n));
    t.p_regressed = t_sf(stat, n - 1);
    t.p_improved = t_sf(-stat, n - 1);
  } else {
    t.model = "loggumbel-pivot";
    const auto [mu, beta] = gumbel_lmoments(y);
    t.location = mu;
    t.scale = std::max(beta, 1e-12);
    const double q = (y_new - mu) / t.scale;
    t.p_regressed = gumbel_pivot_p_above(t.runs, q);
    t.p_improved = gumbel_pivot_p_below(t.runs, q);
  }
  return t;
}

namespace {

// The upper prediction limit of the log value at one-sided level a.
// The prediction's standardised upper quantiles at one level `a`, memoised
// by (model, runs): a run's thousands of statistics share a handful.
class UpperQuantiles {
 public:
  explicit UpperQuantiles(double a) : a_(a) {}
  double operator()(StatisticKind kind, std::size_t runs) {
    auto [it, fresh] = memo_.try_emplace({kind, runs}, 0.0);
    if (fresh) {
      const double n = static_cast<double>(runs);
      it->second = kind == StatisticKind::percentile ? t_quantile(1 - a_, n - 1) * std::sqrt(1 + 1 / n)
                                                     : gumbel_pivot_quantile_above(runs, a_);
    }
    return it->second;
  }
  // With the parameters known (runs -> infinity): z (normal) or
  // -log(-log(1 - a)) (Gumbel).
  double known(StatisticKind kind) const {
    return kind == StatisticKind::percentile ? z_quantile(1 - a_) : -std::log(-std::log1p(-a_));
  }

 private:
  double a_;
  std::map<std::pair<StatisticKind, std::size_t>, double> memo_;
};

// The upper prediction limit of the log value, with `runs` earlier runs.
double upper_limit(const StatisticTest& t, std::size_t runs, UpperQuantiles& q) {
  return t.location + q(t.kind, runs) * t.scale;
}
double to_value(const StatisticTest& t, double log_v) { return std::exp(log_v) - t.resolution_ns / 2; }

// The fewest runs whose history (with this location and spread) would call a
// change of `limit` x center regressed; 0 if none up to `most`.
std::size_t runs_needed(const StatisticTest& t, UpperQuantiles& q, double limit, std::size_t most) {
  const double target = log_value(limit * t.center_ns, t.resolution_ns);
  if (t.location + q.known(t.kind) * t.scale >= target) return 0;
  std::size_t lo = t.runs, hi = most;  // upper_limit(lo) > target
  if (hi <= lo || upper_limit(t, hi, q) > target) return 0;
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    (upper_limit(t, mid, q) > target ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace

std::vector<StatisticVerdict> judge(std::span<const StatisticTest> tests, const HistoryOptions& o) {
  const double alpha = 1 - o.confidence;
  std::vector<double> up(tests.size()), down(tests.size());
  std::size_t m = 0;
  for (std::size_t i = 0; i < tests.size(); ++i) {
    up[i] = tests[i].p_regressed;
    down[i] = tests[i].p_improved;
    if (!std::isnan(up[i])) ++m;
  }
  // Members of the family not given here: not significant.
  if (m > 0 && o.family_size > m) {
    up.resize(up.size() + (o.family_size - m), 1.0);
    down.resize(down.size() + (o.family_size - m), 1.0);
    m = o.family_size;
  }
  // Two families, each at alpha: regressions (what fails a run) and
  // improvements (reported, never failing).
  const auto adj_up = adjusted(up, o.correction);
  const auto adj_down = adjusted(down, o.correction);
  const std::string method_tail =
      m > 1 ? ", " + std::string(correction_name(o.correction)) + " over " + std::to_string(m) + " statistics" : "";
  // The level a lone change must reach: the correction's smallest threshold.
  const double lone = o.correction == Correction::none ? alpha : alpha / static_cast<double>(std::max<std::size_t>(m, 1));
  UpperQuantiles quantiles(lone);

  std::vector<StatisticVerdict> out(tests.size());
  for (std::size_t i = 0; i < tests.size(); ++i) {
    const auto& t = tests[i];
    auto& v = out[i];
    if (t.model == "none") {
      v.verdict = Verdict::inconclusive;
      v.method = "none";
      v.why = "no earlier run";
      continue;
    }
    const double above = t.center_ns + t.allowed_ns, below = t.center_ns - t.allowed_ns;
    if (t.model == "tolerance") {
      v.method = "tolerance";
      v.verdict = t.value_ns > above ? Verdict::regressed : t.value_ns < below ? Verdict::improved : Verdict::unchanged;
      v.why = std::to_string(t.runs) + " earlier run" + (t.runs == 1 ? "" : "s") +
              ": the spread between runs cannot be judged; the tolerance rule against " +
              (t.runs == 1 ? "it" : "their median") + " alone";
      continue;
    }
    v.confidence = o.confidence;
    v.method = t.model + method_tail;
    v.detectable_ratio = to_value(t, upper_limit(t, t.runs, quantiles)) / t.center_ns;
    if (adj_up[i] <= alpha && t.value_ns > above) {
      v.verdict = Verdict::regressed;
      v.p = adj_up[i];
      v.why = "above the history's prediction (adjusted p " + fmt(v.p) + ") and beyond the tolerance";
      continue;
    }
    if (adj_down[i] <= alpha && t.value_ns < below) {
      v.verdict = Verdict::improved;
      v.p = adj_down[i];
      v.why = "below the history's prediction (adjusted p " + fmt(v.p) + ") and beyond the tolerance";
      continue;
    }
    v.p = adj_up[i];
    if (adj_up[i] <= alpha) {
      v.verdict = Verdict::unchanged;
      v.why = "above the history's prediction but within the tolerance";
    } else if (adj_down[i] <= alpha) {
      v.verdict = Verdict::unchanged;
      v.why = "below the history's prediction but within the tolerance";
    } else if (v.detectable_ratio > o.detectable_ratio_limit) {
      v.verdict = Verdict::inconclusive;
      v.runs_needed = runs_needed(t, quantiles, o.detectable_ratio_limit, o.max_runs_needed);
      v.why = "the history is too noisy: only x" + fmt(v.detectable_ratio) + " would be detected (limit x" +
              fmt(o.detectable_ratio_limit) + "); " +
              (v.runs_needed ? std::to_string(v.runs_needed) + " earlier runs would do"
                             : "no number of runs would do: longer cells or a quieter machine");
    } else {
      v.verdict = Verdict::unchanged;
      v.why = "within the history's prediction";
    }
  }
  return out;
}

json to_json(const StatisticTest& t, const StatisticVerdict& v) {
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  auto ns = [](double x) { return std::isfinite(x) ? json(static_cast<long long>(std::llround(x))) : json(nullptr); };
  return json{{"verdict", verdict_name(v.verdict)},
              {"confidence", num(v.confidence)},
              {"method", v.method},
              {"runs", t.runs},
              {"value_ns", ns(t.value_ns)},
              {"center_ns", ns(t.center_ns)},
              {"allowed_ns", ns(t.allowed_ns)},
              {"p", num(v.p)},
              {"p_regressed_raw", num(t.p_regressed)},
              {"p_improved_raw", num(t.p_improved)},
              {"detectable_ratio", num(v.detectable_ratio)},
              {"runs_needed", v.runs_needed ? json(v.runs_needed) : json(nullptr)},
              {"why", v.why}};
}

}  // namespace vmlat::stats
