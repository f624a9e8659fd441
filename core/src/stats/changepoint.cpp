#include "changepoint.hpp"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>

#include "stats/common.hpp"
#include "stats/multiplicity.hpp"

namespace vmlat::stats {

using detail::median;
using detail::Policy;

namespace {

// Student's two-sample t-test with the pooled variance, two-sided: exact
// under the null (one normal distribution of log values on both sides, so the
// same variance); Welch's approximation is liberal in the far tail with a
// side of 3 runs, the tail a corrected p-value lives in. `floor_var` is added
// to the pooled variance (the quantum's rounding variance on the log scale).
double student_p(std::span<const double> a, std::span<const double> b, double floor_var) {
  auto sums = [](std::span<const double> x, double& mean, double& ss) {
    mean = 0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    ss = 0;
    for (double v : x) ss += (v - mean) * (v - mean);
  };
  double m1, ss1, m2, ss2;
  sums(a, m1, ss1);
  sums(b, m2, ss2);
  const double n1 = static_cast<double>(a.size()), n2 = static_cast<double>(b.size()), df = n1 + n2 - 2;
  const double var = (ss1 + ss2) / df + floor_var;
  const double se2 = var * (1 / n1 + 1 / n2);
  if (!(se2 > 0)) return m1 == m2 ? 1.0 : 0.0;
  const double t = std::abs(m2 - m1) / std::sqrt(se2);
  return 2 * boost::math::cdf(boost::math::complement(boost::math::students_t_distribution<double, Policy>(df), t));
}

struct Candidate {
  std::size_t tau = 0;  // absolute index
  double p = 1;
};

// The best split of y[a..b) by E-divisive and its corrected p-value.
Candidate candidate(std::span<const double> y, std::size_t a, std::size_t b, std::size_t min_seg, double floor_var) {
  Candidate c;
  if (b - a < 2 * min_seg) return c;
  const auto q = edivisive_statistic(y.subspan(a, b - a), min_seg);
  std::size_t best = min_seg;
  for (std::size_t t = min_seg; t <= b - a - min_seg; ++t)
    if (q[t] > q[best]) best = t;
  c.tau = a + best;
  const double positions = static_cast<double>(b - a - 2 * min_seg + 1);
  c.p = std::min(1.0, positions * student_p(y.subspan(a, best), y.subspan(a + best, b - a - best), floor_var));
  return c;
}

// Binary segmentation of y from a first accepted split: every segment's
// candidate is tested at `level` x (segment length / series length), so that
// the disjoint segments of a series share `level` (their false splits add up
// to at most `level`); accepted ones split their segment.
std::vector<Candidate> segment(std::span<const double> y, Candidate first, double level, std::size_t min_seg,
                               double floor_var) {
  std::vector<Candidate> found{first};
  std::vector<std::pair<std::size_t, std::size_t>> todo{{0, first.tau}, {first.tau, y.size()}};
  while (!todo.empty()) {
    const auto [a, b] = todo.back();
    todo.pop_back();
    const auto c = candidate(y, a, b, min_seg, floor_var);
    if (c.tau == 0 || !(c.p <= level * static_cast<double>(b - a) / static_cast<double>(y.size()))) continue;
    found.push_back(c);
    todo.emplace_back(a, c.tau);
    todo.emplace_back(c.tau, b);
  }
  std::sort(found.begin(), found.end(), [](const Candidate& l, const Candidate& r) { return l.tau < r.tau; });
  return found;
}

std::vector<ChangePoint> describe(std::span<const double> series, const std::vector<Candidate>& found) {
  std::vector<ChangePoint> out;
  for (std::size_t i = 0; i < found.size(); ++i) {
    const std::size_t lo = i ? found[i - 1].tau : 0, mid = found[i].tau;
    const std::size_t hi = i + 1 < found.size() ? found[i + 1].tau : series.size();
    out.push_back({mid, median(series.subspan(lo, mid - lo)), median(series.subspan(mid, hi - mid)), found[i].p});
  }
  return out;
}

struct Prepared {
  std::vector<double> y;
  double floor_var = 0;
};
Prepared prepare(std::span<const double> series, double resolution) {
  Prepared p;
  p.y.reserve(series.size());
  for (double v : series) p.y.push_back(std::log(std::max(v + resolution / 2, 1.0)));
  if (resolution > 0 && !series.empty()) {
    const double q = resolution / std::max(median(series) + resolution / 2, 1.0);
    p.floor_var = q * q / 12;
  }
  return p;
}

}  // namespace

std::vector<double> edivisive_statistic(std::span<const double> y, std::size_t min_seg) {
  const std::size_t n = y.size();
  std::vector<double> q(n + 1, 0.0);
  if (n < 2 * std::max<std::size_t>(min_seg, 2)) return q;
  // W_L(t): sum of |y_i - y_k| over i < k < t; W_R(t): over t <= j < l < n.
  std::vector<double> wl(n + 1, 0.0), wr(n + 1, 0.0);
  for (std::size_t t = 1; t < n; ++t) {
    double row = 0;
    for (std::size_t i = 0; i < t; ++i) row += std::abs(y[i] - y[t]);
    wl[t + 1] = wl[t] + row;
  }
  for (std::size_t t = n - 1; t-- > 0;) {
    double row = 0;
    for (std::size_t j = t + 1; j < n; ++j) row += std::abs(y[t] - y[j]);
    wr[t] = wr[t + 1] + row;
  }
  const double total = wl[n];
  for (std::size_t t = std::max<std::size_t>(min_seg, 2); t + std::max<std::size_t>(min_seg, 2) <= n; ++t) {
    const double n1 = static_cast<double>(t), n2 = static_cast<double>(n - t);
    const double between = total - wl[t] - wr[t];
    // Matteson & James (2014), eq. (5) and (6), alpha = 1.
    const double e = 2 * between / (n1 * n2) - wl[t] / (n1 * (n1 - 1) / 2) - wr[t] / (n2 * (n2 - 1) / 2);
    q[t] = n1 * n2 / static_cast<double>(n) * e;
  }
  return q;
}

std::vector<ChangePoint> change_points(std::span<const double> series, const ChangePointOptions& o) {
  const std::size_t min_seg = std::max<std::size_t>(o.min_segment, 2);
  const auto p = prepare(series, o.resolution_ns);
  const double alpha = 1 - o.confidence;
  const auto first = candidate(p.y, 0, p.y.size(), min_seg, p.floor_var);
  if (first.tau == 0 || !(first.p <= alpha)) return {};
  return describe(series, segment(p.y, first, alpha, min_seg, p.floor_var));
}

std::vector<std::vector<ChangePoint>> change_points(std::span<const std::vector<double>> series,
                                                    const ChangePointOptions& o) {
  return change_points(series, std::vector<double>(series.size(), o.resolution_ns), o);
}

std::vector<std::vector<ChangePoint>> change_points(std::span<const std::vector<double>> series,
                                                    std::span<const double> resolutions_ns,
                                                    const ChangePointOptions& o) {
  const std::size_t min_seg = std::max<std::size_t>(o.min_segment, 2);
  const double alpha = 1 - o.confidence;
  std::vector<Prepared> prepared;
  std::vector<Candidate> first;
  std::vector<double> p;
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    prepared.push_back(prepare(s, i < resolutions_ns.size() ? resolutions_ns[i] : o.resolution_ns));
    first.push_back(candidate(prepared.back().y, 0, s.size(), min_seg, prepared.back().floor_var));
    p.push_back(first.back().tau == 0 ? std::numeric_limits<double>::quiet_NaN() : first.back().p);
  }
  const auto adj = bh_adjusted(p);
  std::size_t tested = 0, selected = 0;
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (!std::isnan(p[i])) ++tested;
    if (adj[i] <= alpha) ++selected;
  }
  const double level = tested ? alpha * static_cast<double>(selected) / static_cast<double>(tested) : alpha;
  std::vector<std::vector<ChangePoint>> out(series.size());
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (!(adj[i] <= alpha)) continue;
    const auto& pr = prepared[i];
    out[i] = describe(series[i], segment(pr.y, first[i], level, min_seg, pr.floor_var));
  }
  return out;
}

json to_json(const ChangePoint& c) {
  return json{{"index", c.index},
              {"before_ns", static_cast<long long>(std::llround(c.before_ns))},
              {"after_ns", static_cast<long long>(std::llround(c.after_ns))},
              {"p", c.p}};
}

}  // namespace vmlat::stats
