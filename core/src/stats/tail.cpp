#include "tail.hpp"

#include <algorithm>
#include <array>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <limits>
#include <functional>
#include <numeric>

#include "stats/common.hpp"

namespace vmlat::stats {

using detail::chi2_sf;
using detail::fmt;
using detail::Policy;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
// xi within this of 0 is the exponential limit (the series below are exact to
// rounding there, the closed forms lose digits).
constexpr double kXiSeries = 1e-6;
// The MLE is searched in this range; xi < -0.5 is reported but not used
// (Smith 1985: the MLE is not regular there, its intervals mean nothing).
constexpr double kXiMin = -0.95, kXiMax = 3.0, kXiRegular = -0.5;
// The chi-square test's cells expect at least this many samples: with 5
// (Cochran's rule) the test rejected a true GPD in 1.2% of simulations at the
// 1% level, with 10 in 1.05% (docs/statistics.md).
constexpr double kMinExpected = 10;
// Scoring steps of the fit and of the test's refit (see Grouped::maximise).
constexpr int kFitSteps = 25, kRefitSteps = 12;

double normal_quantile(double p) { return boost::math::quantile(boost::math::normal_distribution<double, Policy>(), p); }
double chi2_quantile(double p, double df) {
  return boost::math::quantile(boost::math::chi_squared_distribution<double, Policy>(df), p);
}

// log S(y) of the GPD (S = 1 - F) and its derivatives by sigma and xi.
// S(y) = (1 + xi y / sigma)^(-1/xi); y beyond the upper endpoint (xi < 0) has
// S = 0 (`inside` false).
struct LogSurvival {
  double log_s = 0, d_sigma = 0, d_xi = 0;
  bool inside = true;
};
LogSurvival gpd_log_survival(double y, double sigma, double xi) {
  LogSurvival r;
  if (y <= 0) return r;
  const double a = y / sigma, xa = xi * a;
  if (xa <= -1) {
    r.inside = false;
    r.log_s = -inf;
    return r;
  }
  const double t = 1 + xa;
  r.d_sigma = a / (sigma * t);
  if (std::abs(xi) < kXiSeries) {
    // -(1/xi) log1p(xi a) and its xi-derivative as series in xi a.
    r.log_s = -a * (1 - xa / 2 + xa * xa / 3);
    r.d_xi = a * a * (0.5 - 2 * xa / 3);
  } else {
    const double l = std::log1p(xa);
    r.log_s = -l / xi;
    r.d_xi = l / (xi * xi) - a / (xi * t);
  }
  return r;
}

// The grouped (interval-censored) GPD likelihood of the exceedances: cell j
// holds c_j samples with Y = X - u in [e_j, e_{j+1}), the last cell is open.
// Exact for samples known by their 1 us bucket: the cells are unions of
// whole buckets.
struct Grouped {
  std::vector<double> e, c;
  double k = 0;

  struct Eval {
    double ll = -inf;
    double g[2] = {0, 0};        // score by (sigma, xi)
    double info[3] = {0, 0, 0};  // expected information: (ss, sx, xx)
    bool ok = false;
  };

  Eval eval(double sigma, double xi, bool derivs) const {
    Eval r;
    if (!(sigma > 0) || !std::isfinite(sigma) || !std::isfinite(xi)) return r;
    double ll = 0;
    double log_s0 = 0, s0 = 1, ds0 = 0, dx0 = 0;  // S(e_j), S dlogS/dsigma, S dlogS/dxi
    const std::size_t G = e.size();
    for (std::size_t j = 0; j < G; ++j) {
      double log_s1 = -inf, s1 = 0, ds1 = 0, dx1 = 0;
      if (j + 1 < G) {
        const auto ls = gpd_log_survival(e[j + 1], sigma, xi);
        if (ls.inside) {
          log_s1 = ls.log_s;
          s1 = std::exp(log_s1);
          ds1 = s1 * ls.d_sigma;
          dx1 = s1 * ls.d_xi;
        }
      }
      // log(S0 - S1) without cancellation: log S0 + log(1 - S1/S0).
      double log_p = -inf, p = 0;
      if (s0 > 0) {
        const double part = s1 > 0 ? -std::expm1(log_s1 - log_s0) : 1.0;
        log_p = log_s0 + std::log(part);
        p = s0 * part;
      }
      if (!std::isfinite(log_p) && c[j] > 0) return r;  // samples where the model puts none
      if (c[j] > 0) ll += c[j] * log_p;
      if (derivs && p > 0) {
        const double gs = ds0 - ds1, gx = dx0 - dx1;
        r.g[0] += c[j] * gs / p;
        r.g[1] += c[j] * gx / p;
        r.info[0] += k * gs * gs / p;
        r.info[1] += k * gs * gx / p;
        r.info[2] += k * gx * gx / p;
      }
      log_s0 = log_s1;
      s0 = s1;
      ds0 = ds1;
      dx0 = dx1;
    }
    r.ll = ll;
    r.ok = true;
    return r;
  }

  // Fisher scoring (Rao 1948) with step halving; returns the last evaluation.
  struct Mle {
    double sigma = kNaN, xi = kNaN;
    Eval at;
    bool converged = false;
  };
  // At most `steps` scoring steps: a correct model converges in about 5 from
  // the pilot; a tail far from any GPD crawls (scoring converges linearly
  // under misspecification), and is better called not converged than paid
  // for with hundreds of likelihood evaluations.
  Mle maximise(double sigma, double xi, int steps) const {
    Mle m;
    Eval cur = eval(sigma, xi, true);
    for (int tries = 0; !cur.ok && tries < 20; ++tries) {
      sigma *= 2;  // a start too short for the last cell's samples
      cur = eval(sigma, xi = std::max(xi, 0.0), true);
    }
    if (!cur.ok) return m;
    for (int it = 0; it < steps; ++it) {
      const double a = cur.info[0], b = cur.info[1], d = cur.info[2];
      const double det = a * d - b * b;
      double ds, dx;
      if (det > 0 && a > 0) {
        ds = (d * cur.g[0] - b * cur.g[1]) / det;
        dx = (a * cur.g[1] - b * cur.g[0]) / det;
      } else {  // information not positive: a small gradient step
        ds = 1e-3 * sigma * (cur.g[0] > 0 ? 1 : -1);
        dx = 1e-3 * (cur.g[1] > 0 ? 1 : -1);
      }
      double step = 1;
      Eval next;
      double ns = sigma, nx = xi;
      for (int h = 0; h < 16; ++h, step /= 2) {
        ns = sigma + step * ds;
        nx = std::clamp(xi + step * dx, kXiMin, kXiMax);
        if (!(ns > 0)) continue;
        next = eval(ns, nx, true);
        if (next.ok && next.ll >= cur.ll - 1e-12 * std::abs(cur.ll)) break;
        next.ok = false;
      }
      if (!next.ok) {  // no step improves: at the maximum to rounding
        m.converged = true;
        break;
      }
      const bool small = (std::abs(ns - sigma) <= 1e-9 * sigma && std::abs(nx - xi) <= 1e-9) ||
                         next.ll - cur.ll < 1e-11 * (1 + std::abs(cur.ll));
      sigma = ns;
      xi = nx;
      cur = next;
      if (small) {
        m.converged = true;
        break;
      }
    }
    m.sigma = sigma;
    m.xi = xi;
    m.at = cur;
    return m;
  }

  // The probability of each cell.
  std::vector<double> probabilities(double sigma, double xi) const {
    std::vector<double> prob(e.size());
    double prev = 1;
    for (std::size_t j = 0; j < e.size(); ++j) {
      double next = 0;
      if (j + 1 < e.size()) {
        const auto ls = gpd_log_survival(e[j + 1], sigma, xi);
        next = ls.inside ? std::exp(ls.log_s) : 0;
      }
      prob[j] = prev - next;
      prev = next;
    }
    return prob;
  }

  // Pearson's X^2: the fit's cells merged (from the threshold up, a remainder
  // joining the cell before it) until each expects at least kMinExpected
  // samples under the fit, and the grouped MLE refitted on those cells (a few scoring steps
  // from the fit), so that X^2 ~ chi2(cells - 1 - 2) (Cramer 1946). With the
  // fine cells' estimate it would lie between chi2(cells - 3) and
  // chi2(cells - 1) (Chernoff & Lehmann 1954): too many rejections.
  void gof(double sigma, double xi, double& stat, int& df, double& p) const {
    const auto prob = probabilities(sigma, xi);
    Grouped t;
    t.k = k;
    double obs = 0, expct = 0;
    for (std::size_t j = 0; j < e.size(); ++j) {
      if (obs == 0 && expct == 0) t.e.push_back(e[j]);
      obs += c[j];
      expct += k * prob[j];
      if (expct >= kMinExpected) {
        t.c.push_back(obs);
        obs = expct = 0;
      }
    }
    if (obs > 0 || expct > 0) {
      if (t.c.empty()) {
        t.c.push_back(obs);
      } else {
        t.e.pop_back();
        t.c.back() += obs;
      }
    }
    df = static_cast<int>(t.e.size()) - 3;
    if (df < 1) {
      stat = p = kNaN;
      return;
    }
    const auto refit = t.maximise(sigma, xi, kRefitSteps);
    const auto q = t.probabilities(refit.sigma, refit.xi);
    double x2 = 0;
    for (std::size_t j = 0; j < t.e.size(); ++j) {
      const double x = k * q[j];
      x2 += x > 0 ? (t.c[j] - x) * (t.c[j] - x) / x : inf;
    }
    stat = x2;
    p = chi2_sf(x2, df);
  }
};

using Buckets = std::vector<std::pair<std::uint64_t, std::uint64_t>>;  // non-empty (bucket us, count), ascending

// The cells of the exceedances (`tail`: the buckets at and above u_us, then
// `overflows` samples beyond the histogram's range, at most `max_us`).
// First a pilot fit: probability-weighted moments (Hosking & Wallis 1987) of
// the bucket midpoints. The cells' edges are the pilot's quantiles at which
// the expected count above falls geometrically from k to about 1, rounded to
// bucket edges (cells are whole buckets, so the likelihood stays exact), the
// last cell open: the top cells hold single samples, and the extreme order
// statistics carry most of what the data say about the shape. The edges come
// from a model, not from the observed values: edges at the observations
// (each cell starting at a sample) stretch every sample over its cell and
// biased the shape by about +0.02 at 600 exceedances when tried. Overflows
// (values unknown, above every bucket and at most max) count in the cell of
// the max.
Grouped make_cells(std::span<const std::pair<std::uint64_t, std::uint64_t>> tail, std::uint64_t overflows,
                   std::uint64_t u_us, double max_us, double k, std::size_t cells, double& sigma0, double& xi0) {
  double cum = 0, a0 = 0, a1 = 0, top = 0;
  auto moments = [&](double y, double n) {
    // Mean of (1 - plotting position (i - 0.35)/k) over this bucket's ranks.
    const double surv = 1 - (cum + (n + 1) / 2 - 0.35) / k;
    a0 += n * y;
    a1 += n * y * surv;
    cum += n;
  };
  for (const auto& [bucket, count] : tail) {
    top = static_cast<double>(bucket - u_us);
    moments(top + 0.5, static_cast<double>(count));
  }
  const double y_max = std::max(max_us - static_cast<double>(u_us), top + 1);
  if (overflows) moments(y_max, static_cast<double>(overflows));
  a0 /= k;
  a1 /= k;
  const double d = a0 - 2 * a1;
  xi0 = 2 - a0 / d;
  sigma0 = 2 * a0 * a1 / d;
  if (!(d > 0) || !(sigma0 > 0) || !std::isfinite(xi0)) {
    sigma0 = std::max(a0, 0.5);
    xi0 = 0;
  }
  xi0 = std::clamp(xi0, -0.4, 0.9);

  Grouped g;
  g.k = k;
  g.e.push_back(0);
  const double r = std::pow(k, -1.0 / static_cast<double>(std::max<std::size_t>(cells, 2)));
  double s = 1;
  for (std::size_t j = 1; j < cells; ++j) {
    s *= r;
    const double y = std::abs(xi0) < 1e-9 ? -sigma0 * std::log(s) : sigma0 / xi0 * (std::pow(s, -xi0) - 1);
    const double edge = std::round(y);
    if (std::isfinite(edge) && edge > g.e.back()) g.e.push_back(edge);
  }
  g.c.assign(g.e.size(), 0);
  std::size_t j = 0;
  auto put = [&](double y, double n) {
    while (j + 1 < g.e.size() && g.e[j + 1] <= y) ++j;
    g.c[j] += n;
  };
  for (const auto& [bucket, count] : tail) put(static_cast<double>(bucket - u_us), static_cast<double>(count));
  if (overflows) put(y_max, static_cast<double>(overflows));
  return g;
}

// Samples at or above bound_ns: the buckets whose lower edge is at or above
// it, and the overflows.
std::uint64_t count_at_or_above(const Buckets& buckets, std::uint64_t overflows, double bound_ns) {
  const auto edge = static_cast<std::uint64_t>(std::max(0.0, std::ceil(bound_ns / 1000)));
  auto it = std::lower_bound(buckets.begin(), buckets.end(), edge, [](const auto& b, std::uint64_t e) { return b.first < e; });
  std::uint64_t c = overflows;
  for (; it != buckets.end(); ++it) c += it->second;
  return c;
}
Buckets nonempty_buckets(const Histogram& h) {
  Buckets b;
  b.reserve(h.buckets().size());
  for (const auto& [bucket, count] : h.buckets())
    if (count) b.emplace_back(bucket, count);
  return b;
}

// Expected exceedances of u in `horizon_s`: the m of the return level
// u + sigma/xi (m^xi - 1) (Coles 2001, 4.3.3; m = N zeta_u).
double exceedances_in(const TailFit& f, double horizon_s) {
  return horizon_s * static_cast<double>(f.exceedances) / f.duration_s;
}

// (m^xi - 1)/xi, continuous at xi = 0 (ln m).
double gpd_growth(double m, double xi) {
  const double l = std::log(m);
  return std::abs(xi * l) < 1e-9 ? l * (1 + xi * l / 2) : std::expm1(xi * l) / xi;
}

// The profile log-likelihood of the tail through the point (y*, log S(y*) = L):
// sigma(xi) = xi y* / expm1(-xi L), maximised over xi (Brent).
struct Profile {
  const Grouped& g;
  double xi_hat;
  double at(double y, double log_s, double* xi_out = nullptr) const {
    auto neg = [&](double xi) {
      const double den = std::abs(xi) < 1e-12 ? -log_s : std::expm1(-xi * log_s) / xi;
      const auto ev = g.eval(y / den, xi, false);
      return ev.ok ? -ev.ll : 1e300;
    };
    const double lo = std::max(kXiMin, xi_hat - 1.5), hi = std::min(kXiMax, xi_hat + 1.5);
    const auto [xi, nll] = boost::math::tools::brent_find_minima(neg, lo, hi, 30);
    if (xi_out) *xi_out = xi;
    return -nll;
  }
};

// A limit of a profile-likelihood interval: the w on the side `dir` of w_hat
// where the signed root r(w) = sign * sqrt(2 (ll_hat - ll_p(w))) reaches
// `target` (> 0), by secant steps on r (nearly linear in a good scale),
// starting from the Wald guess. +-inf when the profile never drops that far.
double profile_limit(const std::function<double(double)>& ll_p, double ll_hat, double w_hat, double wald_step,
                     int dir, double target, double w_cap) {
  auto r = [&](double w) { return std::sqrt(std::max(0.0, 2 * (ll_hat - ll_p(w)))); };
  double w0 = w_hat, r0 = 0;
  double w1 = w_hat + dir * std::max(wald_step, 1e-6), r1 = r(w1);
  // Bracket: step out until the signed root passes the target.
  for (int i = 0; i < 60 && r1 < target; ++i) {
    w0 = w1;
    r0 = r1;
    w1 = w_hat + (w1 - w_hat) * 2;
    if (dir * (w1 - w_cap) > 0) {
      w1 = w_cap;
      r1 = r(w1);
      if (r1 < target) return dir * inf;
      break;
    }
    r1 = r(w1);
  }
  if (r1 < target) return dir * inf;
  // Regula falsi (Illinois) between w0 (r < target) and w1 (r >= target).
  double f0 = r0 - target, f1 = r1 - target;
  for (int i = 0; i < 40; ++i) {
    const double w = w1 - f1 * (w1 - w0) / (f1 - f0);
    const double f = r(w) - target;
    if (std::abs(f) < 1e-4 || std::abs(w1 - w0) < 1e-7 * (1 + std::abs(w))) return w;
    if ((f > 0) == (f1 > 0)) {
      f0 /= 2;
    } else {
      w0 = w1;
      f0 = f1;
    }
    w1 = w;
    f1 = f;
  }
  return w1;
}

Grouped grouped_of(const TailFit& f) {
  Grouped g;
  g.e = f.edges_us;
  g.c = f.counts;
  g.k = static_cast<double>(f.exceedances);
  return g;
}

double max_of(const Histogram& h) { return static_cast<double>(h.max().count()); }

}  // namespace

namespace {

// Garwood (1936) interval of a Poisson mean with x observed, one-sided limits at `level`.
double poisson_lower(std::uint64_t x, double level) {
  return x == 0 ? 0 : chi2_quantile(1 - level, 2.0 * static_cast<double>(x)) / 2;
}
double poisson_upper(std::uint64_t x, double level) { return chi2_quantile(level, 2.0 * static_cast<double>(x) + 2) / 2; }

// zc: the normal quantile of the two-sided interval's upper end.
ReturnLevel return_level_at(const TailFit& f, double horizon_s, double zc, IntervalMethod method) {
  ReturnLevel r;
  r.horizon_s = horizon_s;
  if (!f.fitted()) return r;
  const double m = exceedances_in(f, horizon_s);
  const double u = f.threshold_ns, s = f.sigma_ns, xi = f.xi;
  if (!(m > 1)) {
    // Fewer than one exceedance of u expected in the horizon: the level is
    // below the threshold, where the model says nothing.
    return r;
  }
  const double grow = gpd_growth(m, xi);
  const double y_hat = s * grow;
  r.value_ns = u + y_hat;
  // Delta method on w = log(z - u) = log sigma + log((m^xi - 1)/xi): its
  // gradient by sigma, xi and log m (m = H k / T; Var(log k) = 1/k, Poisson).
  const double l = std::log(m);
  const double mx = std::exp(xi * l);
  const double dw_dsigma = 1 / s;
  const double dw_dxi = std::abs(xi * l) < 1e-9 ? l / 2 : (xi * l * mx - (mx - 1)) / (xi * (mx - 1));
  const double dw_dlogm = std::abs(xi * l) < 1e-9 ? 1 : xi * mx / (mx - 1);
  const double var_w = dw_dsigma * dw_dsigma * f.var_sigma + 2 * dw_dsigma * dw_dxi * f.cov_sigma_xi +
                       dw_dxi * dw_dxi * f.var_xi + dw_dlogm * dw_dlogm / static_cast<double>(f.exceedances);
  const double sd_w = std::sqrt(std::max(0.0, var_w));
  const double w_hat = std::log(y_hat);
  if (method == IntervalMethod::delta) {
    r.low_ns = u + std::exp(w_hat - zc * sd_w);
    r.high_ns = u + std::exp(w_hat + zc * sd_w);
    return r;
  }
  // Profile likelihood of w with m fixed; the Poisson uncertainty of m
  // (small beside the shape's) is added to the interval's half-widths on the
  // log scale (docs/statistics.md).
  const Grouped g = grouped_of(f);
  const Profile prof{g, xi};
  const double lm = -std::log(m), u_us = u / 1000;
  const double w_hat_us = std::log(y_hat / 1000);
  auto ll_p_us = [&](double w) { return prof.at(std::exp(w), lm); };
  const double ll_hat = f.loglik;
  const double wald = zc * sd_w;
  double lo = profile_limit(ll_p_us, ll_hat, w_hat_us, wald, -1, zc, w_hat_us - 30);
  double hi = profile_limit(ll_p_us, ll_hat, w_hat_us, wald, +1, zc, w_hat_us + 30);
  const double extra = zc * std::abs(dw_dlogm) / std::sqrt(static_cast<double>(f.exceedances));
  const auto widen = [&](double lim, int dir) {
    if (!std::isfinite(lim)) return lim;
    const double half = std::abs(lim - w_hat_us);
    return w_hat_us + dir * std::sqrt(half * half + extra * extra);
  };
  lo = widen(lo, -1);
  hi = widen(hi, +1);
  r.low_ns = (u_us + std::exp(lo)) * 1000;
  r.high_ns = std::isfinite(hi) ? (u_us + std::exp(hi)) * 1000 : inf;
  return r;
}

BoundExceedance bound_exceedance_at(const TailFit& f, const Buckets& buckets, std::uint64_t overflows, double bound_ns,
                                    double confidence, double zc, IntervalMethod method) {
  BoundExceedance e;
  e.bound_ns = bound_ns;
  // The overflows lie beyond the histogram's range but at most at the run's
  // max: a bound above the max is exceeded by none of them.
  const bool max_known = std::isfinite(f.max_ns) && f.max_ns > 0;
  e.observed = count_at_or_above(buckets, max_known && bound_ns > f.max_ns ? 0 : overflows, bound_ns);
  if (!(f.duration_s > 0)) {
    e.basis = "empirical";
    return e;
  }
  const double per_hour = 3600 / f.duration_s;
  const double one_sided = (1 + confidence) / 2;
  if (!f.fitted() || bound_ns <= f.threshold_ns) {
    e.basis = "empirical";
    e.per_hour = static_cast<double>(e.observed) * per_hour;
    e.per_hour_low = poisson_lower(e.observed, one_sided) * per_hour;
    e.per_hour_high = poisson_upper(e.observed, one_sided) * per_hour;
    return e;
  }
  e.basis = "model";
  const double k = static_cast<double>(f.exceedances);
  const double y = (bound_ns - f.threshold_ns) / 1000, s = f.sigma_ns / 1000;
  const auto ls = gpd_log_survival(y, s, f.xi);
  if (!ls.inside) {
    // Beyond the fitted upper endpoint: the model's rate is 0; the upper
    // limit is the empirical one (no sample there).
    e.per_hour = e.per_hour_low = 0;
    e.per_hour_high = poisson_upper(e.observed, one_sided) * per_hour;
    return e;
  }
  const double log_rate = std::log(k * per_hour) + ls.log_s;
  e.per_hour = std::exp(log_rate);
  // Delta method on log(rate) = log k + log S(y): sigma in us here.
  const double vs = f.var_sigma / 1e6, csx = f.cov_sigma_xi / 1e3, vx = f.var_xi;
  const double var = ls.d_sigma * ls.d_sigma * vs + 2 * ls.d_sigma * ls.d_xi * csx + ls.d_xi * ls.d_xi * vx + 1 / k;
  const double sd = std::sqrt(std::max(0.0, var));
  if (method == IntervalMethod::delta) {
    e.per_hour_low = std::exp(log_rate - zc * sd);
    e.per_hour_high = std::exp(log_rate + zc * sd);
    return e;
  }
  const Grouped g = grouped_of(f);
  const Profile prof{g, f.xi};
  auto ll_p = [&](double v) { return prof.at(y, std::min(v, -1e-12)); };
  const double v_hat = ls.log_s;
  const double wald = zc * std::sqrt(std::max(0.0, var - 1 / k));
  double lo = profile_limit(ll_p, f.loglik, v_hat, wald, -1, zc, v_hat - 200);
  double hi = profile_limit(ll_p, f.loglik, v_hat, wald, +1, zc, -1e-9);
  const double extra = zc / std::sqrt(k);
  auto widen = [&](double lim, int dir) {
    if (!std::isfinite(lim)) return lim;
    const double half = std::abs(lim - v_hat);
    return v_hat + dir * std::sqrt(half * half + extra * extra);
  };
  lo = widen(lo, -1);
  hi = widen(std::isfinite(hi) ? hi : 0.0, +1);
  e.per_hour_low = std::isfinite(lo) ? k * per_hour * std::exp(lo) : 0;
  e.per_hour_high = k * per_hour * std::exp(std::min(hi, 0.0));
  return e;
}

}  // namespace

ReturnLevel return_level(const TailFit& f, double horizon_s, double confidence, IntervalMethod method) {
  return return_level_at(f, horizon_s, normal_quantile((1 + confidence) / 2), method);
}

BoundExceedance bound_exceedance(const TailFit& f, const Histogram& h, double bound_ns, double confidence,
                                 IntervalMethod method) {
  return bound_exceedance_at(f, nonempty_buckets(h), h.overflows(), bound_ns, confidence,
                             normal_quantile((1 + confidence) / 2), method);
}

namespace {

// The fit; with `forced` the empirical fallback for that reason (a numeric
// failure of the fit, caught by fit_tail).
TailFit fit_tail_or(const Histogram& h, double duration_s, const TailOptions& opt, const std::string* forced) {
  TailFit f;
  f.confidence = opt.confidence;
  f.interval = opt.interval == IntervalMethod::profile ? "profile" : "delta";
  f.duration_s = duration_s;
  // One pass over the histogram's map; the rest works on this vector's tail.
  const Buckets buckets = nonempty_buckets(h);
  std::uint64_t n = h.overflows();
  for (const auto& [b, c] : buckets) n += c;
  f.samples = n;
  const double zc = normal_quantile((1 + opt.confidence) / 2);
  auto give_up = [&](std::string why) -> TailFit& {
    f.method = "empirical";
    f.reason = std::move(why);
    for (double b : opt.bounds_ns)
      f.bound_exceedance.push_back(bound_exceedance_at(f, buckets, h.overflows(), b, opt.confidence, zc, opt.interval));
    return f;
  };
  if (n == 0) return give_up("no samples");
  f.max_ns = max_of(h);
  if (forced) return give_up(*forced);
  if (!(duration_s > 0)) return give_up("no measured duration: rates and horizons are unknown");
  const auto k_target = std::max<std::uint64_t>(
      opt.min_exceedances, static_cast<std::uint64_t>(std::ceil((1 - opt.threshold_quantile) * static_cast<double>(n))));
  if (k_target * 10 > n) return give_up("tail too thin: " + std::to_string(n) + " samples");

  // Threshold: walk down from the top to the highest edge with k_target
  // samples at or above it; a bucket so full that it would put more than 10%
  // of the samples above the threshold is left below it.
  std::uint64_t k = h.overflows(), u_us = 0;
  std::size_t first = buckets.size();  // index of the threshold's bucket
  bool found = false;
  while (first > 0) {
    const auto& [bucket, count] = buckets[first - 1];
    if (k + count > n / 10 && k > 0) break;
    k += count;
    u_us = bucket;
    --first;
    if (k >= k_target) {
      found = true;
      break;
    }
  }
  f.threshold_ns = static_cast<double>(u_us) * 1000;
  f.exceedances = k;
  if (!found && k < opt.min_exceedances)
    return give_up("tail too thin: " + std::to_string(k) + " samples above the highest usable threshold (" +
                   std::to_string(opt.min_exceedances) + " needed)");

  double s0, x0;
  Grouped g = make_cells(std::span(buckets).subspan(first), h.overflows(), u_us, f.max_ns / 1000, static_cast<double>(k),
                         opt.max_cells, s0, x0);
  f.cells = g.e.size();
  const std::size_t distinct = buckets.size() - first + (h.overflows() ? 1 : 0);
  if (distinct < 4)
    return give_up("tail too thin: " + std::to_string(distinct) +
                   " distinct values above the threshold (4 needed to test the fit)");

  const auto mle = g.maximise(s0, x0, kFitSteps);
  if (!mle.at.ok) return give_up("the likelihood could not be maximised");
  f.sigma_ns = mle.sigma * 1000;
  f.xi = mle.xi;
  f.loglik = mle.at.ll;
  const double a = mle.at.info[0], b = mle.at.info[1], d = mle.at.info[2], det = a * d - b * b;
  if (det > 0) {
    f.var_sigma = d / det * 1e6;
    f.cov_sigma_xi = -b / det * 1e3;
    f.var_xi = a / det;
  }
  g.gof(mle.sigma, mle.xi, f.gof_statistic, f.gof_df, f.gof_p);
  f.edges_us = std::move(g.e);
  f.counts = std::move(g.c);

  if (!mle.converged)
    return give_up("the likelihood's maximisation did not converge in " + std::to_string(kFitSteps) +
                   " steps: a tail far from a generalised Pareto");
  if (!(det > 0)) return give_up("the fit's information matrix is singular");
  if (f.gof_df < 1) return give_up("too few cells to test the fit");
  if (f.xi < kXiRegular)
    return give_up("shape " + fmt(f.xi) + " < -0.5: a bounded tail where the fit's intervals are not valid");
  if (f.gof_p < opt.gof_alpha)
    return give_up("generalised Pareto rejected by the chi-square test (p = " + fmt(f.gof_p) + " < " +
                   fmt(opt.gof_alpha) + ")");
  if (f.xi >= opt.max_shape)
    return give_up("shape " + fmt(f.xi) + " >= " + fmt(opt.max_shape) +
                   ": not one extreme-value tail (an infinite mean: a mixture of populations above the threshold); "
                   "no return level is extrapolated from it");

  f.method = "gpd";
  for (double hz : opt.horizons_s) f.return_levels.push_back(return_level_at(f, hz, zc, opt.interval));
  for (double bd : opt.bounds_ns)
    f.bound_exceedance.push_back(bound_exceedance_at(f, buckets, h.overflows(), bd, opt.confidence, zc, opt.interval));
  return f;
}

}  // namespace

TailFit fit_tail(const Histogram& h, double duration_s, const TailOptions& opt) {
  try {
    return fit_tail_or(h, duration_s, opt, nullptr);
  } catch (const std::exception& e) {
    // Boost.Math refuses an argument outside its domain (an overflowing
    // statistic on a degenerate tail): the measured max, never a crash.
    const std::string why = std::string("the fit failed numerically (") + e.what() + ")";
    return fit_tail_or(h, duration_s, opt, &why);
  }
}

double run_length_for_rate(double per_hour, double confidence) {
  if (!(per_hour > 0)) return inf;
  return -std::log1p(-confidence) / per_hour * 3600;
}

RunLength run_length_for_bound(const TailFit& f, const Histogram& h, double bound_ns, double confidence,
                               IntervalMethod method) {
  RunLength r;
  r.bound_ns = bound_ns;
  r.confidence = confidence;
  // A one-sided lower limit at c is the lower end of a two-sided 2c-1 interval.
  const auto e = bound_exceedance(f, h, bound_ns, 2 * confidence - 1, method);
  r.basis = e.basis;
  if (e.basis == "empirical" && e.observed == 0) {
    // No exceedance in the run: the rate's upper limit is -ln(1-c)/T, so the
    // run length needed is at least the measured duration; nothing more is known.
    r.seconds = f.duration_s;
    r.at_least = true;
    return r;
  }
  r.seconds = run_length_for_rate(e.per_hour_low, confidence);
  return r;
}

namespace {
json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json ns_or_null(double v) { return std::isfinite(v) ? json(static_cast<long long>(std::llround(v))) : json(nullptr); }
std::string horizon_name(double s) {
  if (s >= 3600 && std::fmod(s, 3600) == 0) return std::to_string(static_cast<long long>(s / 3600)) + "h";
  if (s >= 60 && std::fmod(s, 60) == 0) return std::to_string(static_cast<long long>(s / 60)) + "min";
  return fmt(s, 6) + "s";
}
json return_levels_json(const std::vector<ReturnLevel>& levels) {
  json out = json::array();
  for (const auto& r : levels)
    out.push_back({{"horizon", horizon_name(r.horizon_s)},
                   {"horizon_s", r.horizon_s},
                   {"value_ns", ns_or_null(r.value_ns)},
                   {"low_ns", ns_or_null(r.low_ns)},
                   {"high_ns", ns_or_null(r.high_ns)}});
  return out;
}
}  // namespace

json to_json(const TailFit& f) {
  json bounds = json::array();
  for (const auto& e : f.bound_exceedance)
    bounds.push_back({{"bound_ns", ns_or_null(e.bound_ns)},
                      {"per_hour", finite_or_null(e.per_hour)},
                      {"per_hour_low", finite_or_null(e.per_hour_low)},
                      {"per_hour_high", finite_or_null(e.per_hour_high)},
                      {"basis", e.basis},
                      {"observed", e.observed}});
  return json{{"method", f.method},
              {"reason", f.reason.empty() ? json(nullptr) : json(f.reason)},
              {"threshold_ns", ns_or_null(f.threshold_ns)},
              {"exceedances", f.exceedances},
              {"samples", f.samples},
              {"duration_s", f.duration_s},
              {"sigma_ns", finite_or_null(f.sigma_ns)},
              {"xi", finite_or_null(f.xi)},
              {"cells", f.cells},
              {"gof_statistic", finite_or_null(f.gof_statistic)},
              {"gof_df", f.gof_df},
              {"gof_p", finite_or_null(f.gof_p)},
              {"confidence", finite_or_null(f.confidence)},
              {"interval", f.interval},
              {"max_ns", ns_or_null(f.max_ns)},
              {"return_levels", return_levels_json(f.return_levels)},
              {"bound_exceedance", std::move(bounds)}};
}

// ---------------------------------------------------------------------------
// Block maxima: GEV / Gumbel.

double gev_loglik(std::span<const double> x, double mu, double sigma, double xi) {
  if (!(sigma > 0)) return -inf;
  const double n = static_cast<double>(x.size());
  double ll = -n * std::log(sigma);
  if (std::abs(xi) < 1e-9) {
    for (double v : x) {
      const double z = (v - mu) / sigma;
      ll -= z + std::exp(-z);
    }
    return ll;
  }
  for (double v : x) {
    const double t = 1 + xi * (v - mu) / sigma;
    if (!(t > 0)) return -inf;
    const double lt = std::log(t);
    ll -= (1 + 1 / xi) * lt + std::exp(-lt / xi);
  }
  return ll;
}

namespace {
// Nelder & Mead (1965) simplex maximisation of f over R^dim; small and
// derivative-free, for the three GEV parameters (not on a hot path).
template <std::size_t dim>
std::array<double, dim> nelder_mead(const std::function<double(const std::array<double, dim>&)>& f,
                                    std::array<double, dim> start, std::array<double, dim> step, int iters) {
  using P = std::array<double, dim>;
  std::array<P, dim + 1> pts;
  std::array<double, dim + 1> val;
  pts[0] = start;
  for (std::size_t i = 0; i < dim; ++i) {
    pts[i + 1] = start;
    pts[i + 1][i] += step[i];
  }
  for (std::size_t i = 0; i <= dim; ++i) val[i] = f(pts[i]);
  for (int it = 0; it < iters; ++it) {
    std::array<std::size_t, dim + 1> o;
    std::iota(o.begin(), o.end(), 0);
    std::sort(o.begin(), o.end(), [&](auto a, auto b) { return val[a] > val[b]; });  // best first
    const auto best = o[0], worst = o[dim], second = o[dim - 1];
    if (std::abs(val[best] - val[worst]) < 1e-12 * (1 + std::abs(val[best]))) break;
    P c{};
    for (std::size_t i = 0; i < dim; ++i)
      for (std::size_t j = 0; j < dim; ++j) c[j] += pts[o[i]][j] / dim;
    auto along = [&](double t) {
      P p;
      for (std::size_t j = 0; j < dim; ++j) p[j] = c[j] + t * (pts[worst][j] - c[j]);
      return p;
    };
    const P r = along(-1);
    const double fr = f(r);
    if (fr > val[best]) {
      const P e = along(-2);
      const double fe = f(e);
      if (fe > fr) {
        pts[worst] = e;
        val[worst] = fe;
      } else {
        pts[worst] = r;
        val[worst] = fr;
      }
    } else if (fr > val[second]) {
      pts[worst] = r;
      val[worst] = fr;
    } else {
      const P k = along(fr > val[worst] ? -0.5 : 0.5);
      const double fk = f(k);
      if (fk > std::max(fr, val[worst])) {
        pts[worst] = k;
        val[worst] = fk;
      } else {
        for (std::size_t i = 1; i <= dim; ++i) {
          for (std::size_t j = 0; j < dim; ++j) pts[o[i]][j] = pts[best][j] + 0.5 * (pts[o[i]][j] - pts[best][j]);
          val[o[i]] = f(pts[o[i]]);
        }
      }
    }
  }
  std::size_t b = 0;
  for (std::size_t i = 1; i <= dim; ++i)
    if (val[i] > val[b]) b = i;
  return pts[b];
}

// Symmetric numeric Hessian of f at x with steps h.
template <std::size_t dim>
std::array<std::array<double, dim>, dim> hessian(const std::function<double(const std::array<double, dim>&)>& f,
                                                 std::array<double, dim> x, std::array<double, dim> h) {
  std::array<std::array<double, dim>, dim> H{};
  const double f0 = f(x);
  for (std::size_t i = 0; i < dim; ++i)
    for (std::size_t j = i; j < dim; ++j) {
      auto at = [&](double si, double sj) {
        auto y = x;
        y[i] += si * h[i];
        y[j] += sj * h[j];
        return f(y);
      };
      double v;
      if (i == j)
        v = (at(1, 0) - 2 * f0 + at(-1, 0)) / (h[i] * h[i]);
      else
        v = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h[i] * h[j]);
      H[i][j] = H[j][i] = v;
    }
  return H;
}

bool invert3(const double a[3][3], double out[3][3]) {
  const double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                     a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                     a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  if (!(std::abs(det) > 0) || !std::isfinite(det)) return false;
  out[0][0] = (a[1][1] * a[2][2] - a[1][2] * a[2][1]) / det;
  out[0][1] = (a[0][2] * a[2][1] - a[0][1] * a[2][2]) / det;
  out[0][2] = (a[0][1] * a[1][2] - a[0][2] * a[1][1]) / det;
  out[1][0] = (a[1][2] * a[2][0] - a[1][0] * a[2][2]) / det;
  out[1][1] = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det;
  out[1][2] = (a[0][2] * a[1][0] - a[0][0] * a[1][2]) / det;
  out[2][0] = (a[1][0] * a[2][1] - a[1][1] * a[2][0]) / det;
  out[2][1] = (a[0][1] * a[2][0] - a[0][0] * a[2][1]) / det;
  out[2][2] = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det;
  return true;
}

// The GEV quantile at probability p (Coles 2001, 3.4); xi = 0 is Gumbel.
double gev_quantile(double p, double mu, double sigma, double xi) {
  const double y = -std::log(p);
  if (std::abs(xi) < 1e-9) return mu - sigma * std::log(y);
  return mu - sigma / xi * (1 - std::pow(y, -xi));
}
double gev_cdf(double x, double mu, double sigma, double xi) {
  const double z = (x - mu) / sigma;
  if (std::abs(xi) < 1e-9) return std::exp(-std::exp(-z));
  const double t = 1 + xi * z;
  if (t <= 0) return xi > 0 ? 0 : 1;
  return std::exp(-std::pow(t, -1 / xi));
}
}  // namespace

GevParams fit_gumbel(std::span<const double> x) {
  GevParams p;
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return p;
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= n - 1;
  if (!(var > 0)) return p;
  const double lo = *std::min_element(x.begin(), x.end());
  // The scale solves beta = mean - sum x e^{-x/beta} / sum e^{-x/beta}
  // (Coles 2001, 3.3.2); Newton on that equation from the moment estimate.
  double beta = std::sqrt(6 * var) / M_PI;
  for (int it = 0; it < 100; ++it) {
    double s0 = 0, s1 = 0, s2 = 0;
    for (double v : x) {
      const double d = v - lo, w = std::exp(-d / beta);
      s0 += w;
      s1 += d * w;
      s2 += d * d * w;
    }
    const double g = beta - (mean - lo) + s1 / s0;
    // d/dbeta of s1/s0 = (s2 s0 - s1^2) / (s0^2 beta^2).
    const double dg = 1 + (s2 * s0 - s1 * s1) / (s0 * s0 * beta * beta);
    const double nb = beta - g / dg;
    const bool done = std::abs(nb - beta) < 1e-12 * beta;
    beta = nb > 0 ? nb : beta / 2;
    if (done) break;
  }
  double s0 = 0;
  for (double v : x) s0 += std::exp(-(v - lo) / beta);
  p.mu = lo - beta * std::log(s0 / n);
  p.sigma = beta;
  p.xi = 0;
  p.loglik = gev_loglik(x, p.mu, p.sigma, 0);
  return p;
}

GevParams fit_gev(std::span<const double> x) {
  GevParams best;
  const auto gum = fit_gumbel(x);
  if (!std::isfinite(gum.loglik)) return best;
  using P = std::array<double, 3>;
  std::function<double(const P&)> ll = [&](const P& q) { return gev_loglik(x, q[0], std::exp(q[1]), q[2]); };
  best = gum;
  for (double xi0 : {-0.2, 0.05, 0.3}) {
    P q{gum.mu, std::log(gum.sigma), xi0};
    if (!std::isfinite(ll(q))) continue;
    for (int restart = 0; restart < 3; ++restart)
      q = nelder_mead<3>(ll, q, {0.3 * gum.sigma, 0.2, 0.1}, 2000);
    const double v = ll(q);
    if (v > best.loglik) best = GevParams{q[0], std::exp(q[1]), q[2], v};
  }
  return best;
}

BlockMaximaFit fit_block_maxima(std::span<const double> maxima_ns, double block_s, const TailOptions& opt) {
  BlockMaximaFit f;
  f.blocks = maxima_ns.size();
  f.block_s = block_s;
  f.confidence = opt.confidence;
  if (!maxima_ns.empty()) f.max_ns = *std::max_element(maxima_ns.begin(), maxima_ns.end());
  auto give_up = [&](std::string why) {
    f.method = "empirical";
    f.reason = std::move(why);
    return f;
  };
  if (!(block_s > 0)) return give_up("no window length");
  if (maxima_ns.size() < 20) return give_up("too few windows: " + std::to_string(maxima_ns.size()) + " (20 needed)");
  std::vector<double> x(maxima_ns.begin(), maxima_ns.end());
  for (double& v : x) v /= 1000;  // us: the optimiser's steps are of order 1
  const auto gum = fit_gumbel(x);
  const auto gev = fit_gev(x);
  if (!std::isfinite(gum.loglik) || !std::isfinite(gev.loglik)) return give_up("the maxima do not vary");
  const double lr = std::max(0.0, 2 * (gev.loglik - gum.loglik));
  f.gumbel_lr_p = chi2_sf(lr, 1);
  const bool use_gumbel = f.gumbel_lr_p >= 0.05;
  const GevParams& p = use_gumbel ? gum : gev;
  f.mu_ns = p.mu * 1000;
  f.sigma_ns = p.sigma * 1000;
  f.xi = p.xi;
  f.loglik = p.loglik;
  // Pearson X^2 on equiprobable cells under the fitted model; the parameters
  // come from the ungrouped likelihood, so X^2 lies between chi2(G-4) and
  // chi2(G-1) (Chernoff & Lehmann 1954): the p-value uses G-1, the
  // conservative end (a fit is rejected only on clear evidence).
  const std::size_t G = std::clamp<std::size_t>(x.size() / 5, 4, 20);
  std::vector<double> counts(G, 0);
  for (double v : x) {
    const double F = gev_cdf(v, p.mu, p.sigma, p.xi);
    counts[std::min(G - 1, static_cast<std::size_t>(F * static_cast<double>(G)))] += 1;
  }
  const double expct = static_cast<double>(x.size()) / static_cast<double>(G);
  double x2 = 0;
  for (double c : counts) x2 += (c - expct) * (c - expct) / expct;
  f.cells = G;
  f.gof_statistic = x2;
  f.gof_df = static_cast<int>(G) - 1;
  f.gof_p = chi2_sf(x2, f.gof_df);
  if (f.gof_p < opt.gof_alpha)
    return give_up(std::string(use_gumbel ? "Gumbel" : "GEV") + " rejected by the chi-square test (p = " +
                   fmt(f.gof_p) + " < " + fmt(opt.gof_alpha) + ")");
  // Covariance: the inverse observed information by numeric differences in
  // (mu, log sigma, xi).
  using P = std::array<double, 3>;
  std::function<double(const P&)> ll = [&](const P& q) {
    return gev_loglik(x, q[0], std::exp(q[1]), use_gumbel ? 0.0 : q[2]);
  };
  auto H = hessian<3>(ll, {p.mu, std::log(p.sigma), p.xi}, {1e-3 * p.sigma, 1e-3, 1e-3});
  double info[3][3], cov[3][3] = {};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) info[i][j] = -H[i][j];
  if (use_gumbel) {
    info[2][2] = 1;
    info[0][2] = info[2][0] = info[1][2] = info[2][1] = 0;
  }
  if (!invert3(info, cov) || !(cov[0][0] > 0) || !(cov[1][1] > 0)) return give_up("the fit's information matrix is singular");
  if (use_gumbel) cov[2][2] = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) f.cov[i][j] = cov[i][j] * (i == 0 ? 1000 : 1) * (j == 0 ? 1000 : 1);

  f.method = use_gumbel ? "gumbel" : "gev";

  const double zc = normal_quantile((1 + opt.confidence) / 2);
  for (double hz : opt.horizons_s) {
    ReturnLevel r;
    r.horizon_s = hz;
    const double m = hz / block_s;  // blocks in the horizon
    if (m > 1) {
      const double prob = 1 - 1 / m;
      auto zq = [&](const P& q) { return gev_quantile(prob, q[0], std::exp(q[1]), use_gumbel ? 0.0 : q[2]); };
      const P q0{p.mu, std::log(p.sigma), p.xi};
      const double z = zq(q0);
      r.value_ns = z * 1000;
      // Delta method on log z (latencies are positive; the log keeps the
      // interval above 0 and follows the level's right skew).
      if (z > 0) {
        double grad[3];
        const double hstep[3] = {1e-4 * p.sigma, 1e-4, 1e-4};
        for (int i = 0; i < 3; ++i) {
          P a = q0, b = q0;
          a[i] += hstep[i];
          b[i] -= hstep[i];
          grad[i] = (std::log(zq(a)) - std::log(zq(b))) / (2 * hstep[i]);
        }
        if (use_gumbel) grad[2] = 0;
        double var = 0;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) var += grad[i] * cov[i][j] * grad[j];
        const double sd = std::sqrt(std::max(0.0, var));
        r.low_ns = z * std::exp(-zc * sd) * 1000;
        r.high_ns = z * std::exp(zc * sd) * 1000;
      }
    }
    f.return_levels.push_back(r);
  }
  return f;
}

json to_json(const BlockMaximaFit& f) {
  return json{{"method", f.method},
              {"reason", f.reason.empty() ? json(nullptr) : json(f.reason)},
              {"blocks", f.blocks},
              {"block_s", f.block_s},
              {"mu_ns", finite_or_null(f.mu_ns)},
              {"sigma_ns", finite_or_null(f.sigma_ns)},
              {"xi", finite_or_null(f.xi)},
              {"gumbel_lr_p", finite_or_null(f.gumbel_lr_p)},
              {"cells", f.cells},
              {"gof_statistic", finite_or_null(f.gof_statistic)},
              {"gof_df", f.gof_df},
              {"gof_p", finite_or_null(f.gof_p)},
              {"confidence", finite_or_null(f.confidence)},
              {"max_ns", ns_or_null(f.max_ns)},
              {"return_levels", return_levels_json(f.return_levels)}};
}

}  // namespace vmlat::stats
