#include "decompose.hpp"

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstdio>
#include <map>
#include <set>

#include "json_access.hpp"
#include "text_escape.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

const char* const kDecompositionMethod =
    "L = L_timer + L_np + I (docs/decomposition.md). L_timer: timerlat's median IRQ latency where the cell has an irq "
    "series, else the timer-slop model: a timer that cannot fire sooner than a slop S after it is armed, and a probe that "
    "skips the periods it missed, give the wake-up after one of latency L the timer part max(0, S - P + (L mod P)); S is "
    "fitted to the period sweep (the longest period taken as timer-free), and the timer part at p50, p99 and max is the "
    "model's own quantile, up to S at the tail. Cells measured at one period under stress borrow S from their no-stress "
    "sweep. L_np + I: the rest of the statistic; with timerlat split at the IRQ latency of the same statistic. I is taken "
    "as 0: the probe runs at a high RT priority (95 by default) with nothing at or above it expected on the measured CPUs.";

namespace {

constexpr const char* kStats[] = {"p50", "p99", "max"};
constexpr double kStatQ[] = {0.50, 0.99, 1.0};

// The fit compares quantiles 10%..90%: the body, which the timer shapes; the
// tails are the load's.
constexpr int kFitFromPercent = 10, kFitToPercent = 90;
// Slops whose misfit is within one 1 us bucket of the best one's are not told
// apart: the band of the interval, and "not seen" when it reaches 0.
constexpr double kBandToleranceNs = 1000;
// The floor lift compares the lowest 1%, not the minimum: a single odd sample
// (the first wake-up, a rare fast path) would move a minimum.
constexpr double kFloorQuantile = 0.01;

long long stat_ns(const json* stats, const char* stat, const HistogramData& h) {
  std::string key = std::string(stat) + "_ns";
  if (stats)
    if (auto v = integer_at(*stats, key.c_str())) return *v;
  if (std::string(stat) == "max") return h.max_ns;
  return quantile_ns(h, std::string(stat) == "p50" ? 0.50 : 0.99);
}

long long axis_period_ns(const Cell& c) {
  if (auto d = parse_duration(c.axis("period"))) return d->count();
  if (c.result)
    if (auto p = integer_at(member(*c.result, "cell"), "period_ns")) return *p;
  return -1;
}

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

std::string label_of(const std::vector<std::pair<std::string, std::string>>& axes, const std::string& skip) {
  std::string label;
  for (const auto& [k, v] : axes)
    if (k != skip) label += (label.empty() ? "" : ", ") + k + "=" + v;
  return label;
}

// --- the slop model ---

// A latency law on 1 us buckets, uniform within each bucket; `beyond` is the
// mass above every bucket (overflows).
struct BucketLaw {
  long long first_us = 0;
  std::vector<double> mass;
  double beyond = 0;
  double total() const {
    double t = beyond;
    for (double m : mass) t += m;
    return t;
  }
};

BucketLaw law_of(const HistogramData& h) {
  BucketLaw l;
  if (h.buckets.empty()) {
    l.beyond = static_cast<double>(h.overflows);
    return l;
  }
  l.first_us = static_cast<long long>(h.buckets.front().first);
  l.mass.assign(static_cast<std::size_t>(static_cast<long long>(h.buckets.back().first) - l.first_us + 1), 0.0);
  for (const auto& [k, c] : h.buckets) l.mass[static_cast<std::size_t>(static_cast<long long>(k) - l.first_us)] = static_cast<double>(c);
  l.beyond = static_cast<double>(h.overflows);
  return l;
}

// The quantile of a bucket law, interpolated within its bucket (in ns), at
// every u of `us`; a rank among the overflows reads the top of the buckets.
std::vector<double> law_quantiles(const BucketLaw& l, const std::vector<double>& us) {
  std::vector<double> out;
  out.reserve(us.size());
  const double total = l.total();
  double seen = 0;
  std::size_t k = 0;
  for (double u : us) {  // ascending
    const double want = u * total;
    while (k < l.mass.size() && seen + l.mass[k] < want) seen += l.mass[k++];
    if (k == l.mass.size()) {
      out.push_back(static_cast<double>(l.first_us + static_cast<long long>(l.mass.size())) * 1000.0);
      continue;
    }
    const double within = l.mass[k] > 0 ? (want - seen) / l.mass[k] : 0.0;
    out.push_back((static_cast<double>(l.first_us + static_cast<long long>(k)) + std::clamp(within, 0.0, 1.0)) * 1000.0);
  }
  return out;
}

std::vector<double> fit_quantiles() {
  std::vector<double> us;
  for (int p = kFitFromPercent; p <= kFitToPercent; ++p) us.push_back(p / 100.0);
  return us;
}

// Where each bucketed sample of a cell sits in its period: (L mod P, share),
// the largest first. A bucket counts at its middle.
std::vector<std::pair<long long, double>> residues(const HistogramData& h, long long period_ns) {
  std::map<long long, double> by;
  double bucketed = 0;
  for (const auto& [k, c] : h.buckets) bucketed += static_cast<double>(c);
  for (const auto& [k, c] : h.buckets) by[(static_cast<long long>(k) * 1000 + 500) % period_ns] += static_cast<double>(c) / bucketed;
  return {by.rbegin(), by.rend()};
}

// The reference's noise as the model uses it: its non-empty buckets, and the
// 90% quantile above which (plus the largest timer part) a noise value can no
// longer move a quantile the fit reads.
struct Noise {
  std::vector<std::pair<long long, double>> buckets;  // us, mass
  double beyond = 0;
  long long q90_us = 0;
};

Noise noise_of(const HistogramData& h) {
  Noise n;
  double total = static_cast<double>(h.overflows), seen = 0;
  for (const auto& [k, c] : h.buckets) total += static_cast<double>(c);
  n.beyond = static_cast<double>(h.overflows);
  for (const auto& [k, c] : h.buckets) {
    n.buckets.emplace_back(static_cast<long long>(k), static_cast<double>(c));
    if (seen < 0.9 * total) n.q90_us = static_cast<long long>(k);
    seen += static_cast<double>(c);
  }
  return n;
}

// The model's law of one cell's latency under slop `sigma`: the timer part
// (from the cell's own residues) plus the reference's noise, independent of
// it. Only the mass below the 90% quantile is placed; the rest is `beyond`.
BucketLaw model_law(const std::vector<std::pair<long long, double>>& res, long long period_ns, long long sigma, const Noise& noise) {
  long long top_ns = 0;
  double delayed = 0;
  for (const auto& [r, w] : res) {
    if (sigma - period_ns + r <= 0) break;  // largest residues first
    top_ns = std::max(top_ns, sigma - period_ns + r);
    delayed += w;
  }
  // T >= 0, so the model's 90% quantile is at most the noise's plus the
  // largest T: noise above that only counts in the total.
  const long long cut_us = noise.q90_us + top_ns / 1000 + 2;
  BucketLaw g;
  g.first_us = noise.buckets.empty() ? 0 : noise.buckets.front().first;
  g.mass.assign(static_cast<std::size_t>(std::max(0LL, cut_us - g.first_us + 1)), 0.0);
  double placed = 0, all = noise.beyond;
  for (const auto& [k, m] : noise.buckets) all += m;
  auto add = [&](long long bucket, double m) {
    if (bucket > cut_us) return;
    g.mass[static_cast<std::size_t>(bucket - g.first_us)] += m;
    placed += m;
  };
  const double on_time = std::max(0.0, 1.0 - delayed);
  for (const auto& [k, m] : noise.buckets) {
    if (k > cut_us) break;
    add(k, on_time * m);
  }
  for (const auto& [r, w] : res) {
    const long long t = sigma - period_ns + r;
    if (t <= 0) break;
    // N is uniform within its bucket, so t + N splits between two buckets.
    const long long whole = t / 1000;
    const double frac = static_cast<double>(t % 1000) / 1000.0;
    for (const auto& [k, m] : noise.buckets) {
      if (k + whole > cut_us) break;
      add(k + whole, w * m * (1 - frac));
      add(k + whole + 1, w * m * frac);
    }
  }
  g.beyond = std::max(0.0, all - placed);
  return g;
}

struct FitCell {
  long long period_ns = 0;
  std::vector<std::pair<long long, double>> res;
  std::vector<double> quantiles;  // the cell's, at fit_quantiles()
  // The model's at sigma = P: for sigma >= P the timer part is sigma - P + R
  // with every R, so the model's law is this one moved by sigma - P.
  std::vector<double> lifted;
};

// The misfit of slops 0, step, 2 step, ... (whole microseconds), n of them.
// For sigma >= P a cell's model is its lifted law moved by sigma - P. Below
// P, the delayed wake-ups are those whose residue exceeds P - sigma (a
// prefix of `res`); on whole microseconds each keeps its split between two
// buckets, so their part of the law only moves with sigma: it is built once,
// adding each wake-up as it becomes delayed, and read at an offset.
std::vector<double> misfit_profile(const std::vector<FitCell>& cells, const Noise& noise, const std::vector<double>& us, long long step_us,
                                   std::size_t n) {
  std::vector<double> profile(n, 0.0);
  double noise_total = noise.beyond;
  for (const auto& [k, m] : noise.buckets) noise_total += m;
  const long long first = noise.buckets.empty() ? 0 : noise.buckets.front().first;
  // The on-time wake-ups keep the noise as it is, up to the model's cut (the
  // noise's 90% quantile plus the largest timer part, below P here).
  long long longest_us = 0;
  for (const auto& c : cells) longest_us = std::max(longest_us, (c.period_ns + 999) / 1000);
  std::vector<double> dense(static_cast<std::size_t>(noise.q90_us + longest_us + 3 - first + 1), 0.0);
  for (const auto& [k, m] : noise.buckets)
    if (k - first < static_cast<long long>(dense.size())) dense[static_cast<std::size_t>(k - first)] = m;
  for (const auto& c : cells) {
    const long long period_us_up = (c.period_ns + 999) / 1000;
    // delayed[y - y0]: the delayed wake-ups' share of the law at x = y + sigma/1us.
    const long long y0 = first - period_us_up - 2, y1 = noise.q90_us + 3;
    std::vector<double> delayed(static_cast<std::size_t>(y1 - y0 + 1), 0.0);
    std::size_t next_atom = 0;
    double delayed_weight = 0;
    long long top_offset_ns = LLONG_MIN;  // the largest residue - P among the delayed
    for (std::size_t i = 0; i < n; ++i) {
      const long long sigma = static_cast<long long>(i) * step_us * 1000;
      if (sigma >= c.period_ns) {
        double d = 0;
        for (std::size_t q = 0; q < us.size(); ++q) d += std::abs(c.quantiles[q] - c.lifted[q] - static_cast<double>(sigma - c.period_ns));
        profile[i] += d / static_cast<double>(us.size());
        continue;
      }
      for (; next_atom < c.res.size() && sigma - c.period_ns + c.res[next_atom].first > 0; ++next_atom) {
        const auto [r, w] = c.res[next_atom];
        const long long offset = r - c.period_ns;  // t = sigma + offset, in (-P, 0)
        const long long whole = offset >= 0 ? offset / 1000 : -((-offset + 999) / 1000);
        const double frac = static_cast<double>(offset - whole * 1000) / 1000.0;
        for (const auto& [k, m] : noise.buckets) {
          const long long y = k + whole;
          if (y + 1 > y1) break;
          delayed[static_cast<std::size_t>(y - y0)] += w * m * (1 - frac);
          delayed[static_cast<std::size_t>(y + 1 - y0)] += w * m * frac;
        }
        delayed_weight += w;
        top_offset_ns = std::max(top_offset_ns, offset);
      }
      const long long sigma_us = sigma / 1000;
      const long long top_us = top_offset_ns == LLONG_MIN ? 0 : (sigma + top_offset_ns) / 1000;
      // The model's law (as model_law places it) read in one pass, up to its
      // 90% quantile: its total is the noise's, the on-time and the delayed
      // shares of it adding up to one.
      const auto size = static_cast<std::size_t>(noise.q90_us + top_us + 2 - first + 1);
      const double on_time = std::max(0.0, 1.0 - delayed_weight);
      double seen = 0, d = 0;
      std::size_t q = 0;
      for (std::size_t x = 0; x < size && q < us.size(); ++x) {
        const long long at = first + static_cast<long long>(x);
        double m = x < dense.size() ? on_time * dense[x] : 0.0;
        const long long y = at - sigma_us;
        if (y >= y0 && y <= y1) m += delayed[static_cast<std::size_t>(y - y0)];
        for (; q < us.size() && seen + m >= us[q] * noise_total; ++q) {
          const double within = m > 0 ? (us[q] * noise_total - seen) / m : 0.0;
          d += std::abs(c.quantiles[q] - (static_cast<double>(at) + std::clamp(within, 0.0, 1.0)) * 1000.0);
        }
        seen += m;
      }
      for (; q < us.size(); ++q) d += std::abs(c.quantiles[q] - static_cast<double>(first + static_cast<long long>(size)) * 1000.0);
      profile[i] += d / static_cast<double>(us.size());
    }
  }
  return profile;
}

}  // namespace

std::string offset_text(long long ns) {
  if (ns == 0) return "0";
  return (ns < 0 ? "-" : "+") + format_latency(std::chrono::nanoseconds(ns < 0 ? -ns : ns));
}

long long quantile_ns(const HistogramData& h, double q) {
  const std::uint64_t n = h.samples();
  if (n == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n) - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  std::uint64_t seen = 0;
  for (const auto& [k, c] : h.buckets) {
    seen += c;
    if (seen >= rank) return std::clamp(static_cast<long long>(k) * 1000, h.min_ns, h.max_ns);
  }
  return h.max_ns;  // among the overflows
}

long long shift_ns(const HistogramData& cell, const HistogramData& reference) {
  std::vector<long long> d;
  for (int u = 10; u <= 90; ++u) d.push_back(quantile_ns(cell, u / 100.0) - quantile_ns(reference, u / 100.0));
  std::nth_element(d.begin(), d.begin() + static_cast<long>(d.size() / 2), d.end());
  return d[d.size() / 2];
}

long long timer_part_ns(const HistogramData& cell, long long period_ns, long long slop_ns, double q) {
  if (period_ns <= 0) return 0;
  std::vector<std::pair<long long, std::uint64_t>> atoms;
  std::uint64_t n = 0;
  for (const auto& [k, c] : cell.buckets) {
    atoms.emplace_back(std::max(0LL, slop_ns - period_ns + (static_cast<long long>(k) * 1000 + 500) % period_ns), c);
    n += c;
  }
  if (n == 0) return 0;
  std::sort(atoms.begin(), atoms.end());
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n) - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  std::uint64_t seen = 0;
  for (const auto& [t, c] : atoms)
    if ((seen += c) >= rank) return t;
  return atoms.back().first;
}

std::optional<SlopEstimate> estimate_slop(const std::vector<SweepPoint>& points) {
  std::vector<const SweepPoint*> sorted;
  for (const auto& p : points)
    if (p.latency && p.latency->samples() > 0 && !p.latency->buckets.empty() && p.period_ns > 0) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->period_ns < b->period_ns; });
  if (sorted.size() < 2 || sorted.front()->period_ns == sorted.back()->period_ns) return std::nullopt;
  const SweepPoint& reference = *sorted.back();
  const Noise noise = noise_of(*reference.latency);
  const std::vector<double> us = fit_quantiles();
  std::vector<FitCell> cells;
  long long sigma_max = 1000;
  for (const SweepPoint* p : sorted) {
    if (p->period_ns == reference.period_ns) continue;
    FitCell c{p->period_ns, residues(*p->latency, p->period_ns), law_quantiles(law_of(*p->latency), us), {}};
    c.lifted = law_quantiles(model_law(c.res, c.period_ns, c.period_ns, noise), us);
    // Under a slop sigma >= P the body starts at sigma - P: no larger sigma fits.
    sigma_max = std::max(sigma_max, static_cast<long long>(c.quantiles.back()) + p->period_ns);
    cells.push_back(std::move(c));
  }

  // The misfit on a grid of whole microseconds (the histograms' resolution;
  // coarser beyond 2,000 points).
  const long long step_us = std::max(1LL, (sigma_max / 1000 + 1999) / 2000);
  const auto n = static_cast<std::size_t>(sigma_max / 1000 / step_us + 2);
  const std::vector<double> j = misfit_profile(cells, noise, us, step_us, n);
  std::size_t best = 0;
  for (std::size_t i = 1; i < n; ++i)
    if (j[i] < j[best]) best = i;  // the smallest sigma among equals
  const long long fit = static_cast<long long>(best) * step_us * 1000;
  const double fit_misfit = j[best];
  const double limit = fit_misfit + kBandToleranceNs;
  std::size_t lo = best, hi = best;
  for (std::size_t i = 0; i < n; ++i)
    if (j[i] <= limit) {
      lo = std::min(lo, i);
      hi = std::max(hi, i);
    }
  // An edge lies between the last grid slop inside and the first outside:
  // where the misfit, taken as linear between them, reaches the limit.
  const auto step_ns = static_cast<double>(step_us * 1000);
  auto edge = [&](std::size_t inside, std::size_t outside) {
    const double part = (limit - j[inside]) / (j[outside] - j[inside]);
    const double toward = outside > inside ? 1.0 : -1.0;
    return std::llround((static_cast<double>(inside) + toward * std::clamp(part, 0.0, 1.0)) * step_ns);
  };
  const long long band_low = lo > 0 ? edge(lo, lo - 1) : 0;
  const long long band_high = hi + 1 < n ? edge(hi, hi + 1) : static_cast<long long>(hi) * step_us * 1000;

  SlopEstimate e;
  e.fit_ns = fit;
  e.misfit_ns = std::llround(fit_misfit);
  e.band_low_ns = band_low;
  e.band_high_ns = band_high;
  e.reference_period_ns = reference.period_ns;
  e.seen = band_low > 0;
  e.slop_ns = e.seen ? fit : 0;
  e.low_ns = e.seen ? band_low : 0;
  e.high_ns = band_high;
  if (e.seen) {
    // Where the whole body is lifted (P <= slop) the phase of the wake-ups is
    // uniform over the period: the 1% floor and the wake-up rate give sigma too.
    const std::vector<double> floor_q{kFloorQuantile};
    for (const SweepPoint* p : sorted) {
      if (p->period_ns == reference.period_ns || p->period_ns > e.slop_ns) continue;
      SlopEstimate::InReach r;
      r.period_ns = p->period_ns;
      const double cell_floor = law_quantiles(law_of(*p->latency), floor_q)[0];
      const double model_floor = law_quantiles(model_law(residues(*p->latency, p->period_ns), p->period_ns, p->period_ns, noise), floor_q)[0];
      r.floor_ns = p->period_ns + std::llround(cell_floor - model_floor);
      // Wake-ups come sigma + E[N] apart, activations P apart.
      if (p->missed_periods && reference.mean_ns)
        r.missed_ns = std::llround(static_cast<double>(p->period_ns) *
                                       (1.0 + static_cast<double>(*p->missed_periods) / static_cast<double>(p->latency->samples())) -
                                   static_cast<double>(*reference.mean_ns));
      e.low_ns = std::min({e.low_ns, r.floor_ns, r.missed_ns.value_or(r.floor_ns)});
      e.high_ns = std::max({e.high_ns, r.floor_ns, r.missed_ns.value_or(r.floor_ns)});
      e.in_reach.push_back(r);
    }
    e.low_ns = std::max(0LL, e.low_ns);
    // The reference is taken as timer-free; if the slop delays more than a
    // tenth of its wake-ups, that was wrong and sigma is a lower bound.
    std::uint64_t n = 0, delayed = 0;
    for (const auto& [k, c] : reference.latency->buckets) {
      n += c;
      if (e.slop_ns - reference.period_ns + (static_cast<long long>(k) * 1000 + 500) % reference.period_ns > 0) delayed += c;
    }
    e.reference_in_reach = n > 0 && delayed * 10 > n;
  }
  return e;
}

SweepDecomposition decompose_sweep(const std::vector<SweepPoint>& points, const SlopEstimate* borrowed) {
  std::vector<const SweepPoint*> sorted;
  for (const auto& p : points)
    if (p.latency && p.latency->samples() > 0) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->period_ns < b->period_ns; });
  SweepDecomposition out;
  if (sorted.empty()) return out;
  const SweepPoint* reference = sorted.size() >= 2 ? sorted.back() : nullptr;
  if (reference && reference->period_ns == sorted.front()->period_ns) reference = nullptr;  // no sweep
  if (borrowed) out.slop = *borrowed;
  else if (reference) out.slop = estimate_slop(points);
  for (const SweepPoint* p : sorted) {
    PointDecomposition d;
    d.period_ns = p->period_ns;
    if (reference) d.offset_ns = p == reference ? 0 : shift_ns(*p->latency, *reference->latency);
    if (p->irq && p->irq->samples() > 0) d.irq_p50_ns = stat_ns(p->irq_stats, "p50", *p->irq);
    if (d.irq_p50_ns) d.timer_source = "timerlat irq p50";
    else if (out.slop && p->period_ns > 0) d.timer_source = borrowed ? "slop model (borrowed)" : "slop model";
    else continue;  // nothing to estimate L_timer from
    for (std::size_t s = 0; s < 3; ++s) {
      Breakdown b;
      b.stat = kStats[s];
      b.total_ns = std::max(0LL, stat_ns(p->stats, kStats[s], *p->latency));
      // The parts at a statistic are the parts' own statistics (as if the
      // longest timer delays fell on the longest wake-ups): a constant for
      // timerlat's median, the model's quantile for the slop.
      const long long timer = d.irq_p50_ns ? *d.irq_p50_ns : timer_part_ns(*p->latency, p->period_ns, out.slop->slop_ns, kStatQ[s]);
      b.timer_ns = std::clamp(timer, 0LL, b.total_ns);
      b.np_ns = b.total_ns - b.timer_ns;
      if (d.irq_p50_ns) {
        long long irq = stat_ns(p->irq_stats, kStats[s], *p->irq);
        b.irq_np_ns = std::clamp(irq - b.timer_ns, 0LL, b.np_ns);
        b.thread_np_ns = b.np_ns - *b.irq_np_ns;
      }
      d.stats.push_back(b);
    }
    out.points.push_back(std::move(d));
  }
  return out;
}

std::vector<GroupDecomposition> decompose_run(const Run& run) {
  using Axes = std::vector<std::pair<std::string, std::string>>;
  struct Pending {
    GroupDecomposition g;
    std::vector<HistogramData> latency, irq;  // kept alive for the points
    std::vector<SweepPoint> points;
    std::vector<int> cells;
    std::optional<SweepDecomposition> done;
  };
  auto others = [](const Cell& c) {
    Axes axes;
    for (const auto& a : c.axes)
      if (a.first != "period") axes.push_back(a);
    return axes;
  };
  // The same cells without stress: workload=none.
  auto no_stress = [](Axes axes) {
    for (auto& [k, v] : axes)
      if (k == "workload") v = "none";
    return axes;
  };
  auto stressed = [](const Cell& c) { return !c.axis("workload").empty() && c.axis("workload") != "none"; };
  auto has_irq = [](const Cell& c) {
    return std::any_of(c.series.begin(), c.series.end(), [](const Series& s) { return s.name == "irq" && s.merged; });
  };
  // Histograms are decoded only where there is something to estimate: a
  // 1,000-cell run at one period costs nothing here.
  std::map<Axes, std::set<std::string>> periods;
  for (const auto& c : run.cells)
    if (c.measured() && !c.axis("period").empty()) periods[others(c)].insert(c.axis("period"));
  auto can_borrow = [&](const Cell& c) {
    if (!stressed(c) || c.axis("period").empty()) return false;
    auto twin = periods.find(no_stress(others(c)));
    return twin != periods.end() && twin->second.size() >= 2 && twin->second.count(c.axis("period"));
  };
  std::vector<Pending> groups;
  for (const auto& c : run.cells) {
    if (!c.measured() || c.series.empty() || !c.series.front().merged) continue;
    const bool sweep = !c.axis("period").empty() && periods[others(c)].size() >= 2;
    if (!has_irq(c) && !sweep && !can_borrow(c)) continue;
    auto latency = decode_histogram(member(*c.series.front().merged, "histogram"));
    if (!latency) continue;
    const auto axes = others(c);
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Pending& p) { return p.g.axes == axes; });
    if (g == groups.end() || c.axis("period").empty()) {
      groups.emplace_back();
      g = groups.end() - 1;
      g->g.axes = axes;
      g->g.backend = c.axis("backend");
      g->latency.reserve(run.cells.size());
      g->irq.reserve(run.cells.size());
    }
    SweepPoint p;
    p.period_ns = axis_period_ns(c);
    const json& histogram = member(*c.series.front().merged, "histogram");
    p.stats = object_at(*c.series.front().merged, "stats");
    if (p.stats) p.mean_ns = integer_at(*p.stats, "mean_ns");
    if (auto sum = integer_at(histogram, "sum_ns"); !p.mean_ns && sum)
      p.mean_ns = *sum / static_cast<long long>(latency->samples());
    const json& missed = p.stats ? member(*p.stats, "missed_periods") : member(histogram, "missed_periods");
    if (missed.is_number_unsigned()) p.missed_periods = missed.get<std::uint64_t>();
    g->latency.push_back(std::move(*latency));
    p.latency = &g->latency.back();
    for (const auto& s : c.series)
      if (s.name == "irq" && s.merged)
        if (auto irq = decode_histogram(member(*s.merged, "histogram"))) {
          g->irq.push_back(std::move(*irq));
          p.irq = &g->irq.back();
          p.irq_stats = object_at(*s.merged, "stats");
        }
    g->points.push_back(p);
    g->cells.push_back(c.index);
  }
  // Two cells of one period in a group (a free axis the sweep does not
  // separate): the decomposition of a period sweep does not apply.
  auto duplicate = [](const Pending& p) {
    std::map<long long, int> per_period;
    bool twice = false;
    for (const auto& pt : p.points) twice = twice || ++per_period[pt.period_ns] > 1;
    return twice;
  };
  // Sweeps first: the groups at one period borrow their slop.
  for (auto& p : groups)
    if (!duplicate(p) && periods[p.g.axes].size() >= 2) p.done = decompose_sweep(p.points);
  for (auto& p : groups) {
    if (p.done || duplicate(p)) continue;
    const SlopEstimate* borrowed = nullptr;
    if (!p.g.axes.empty() && p.points.size() == 1) {
      const Axes twin = no_stress(p.g.axes);
      for (const auto& q : groups)
        if (q.g.axes == twin && q.done && q.done->slop &&
            std::any_of(q.points.begin(), q.points.end(), [&](const SweepPoint& s) { return s.period_ns == p.points[0].period_ns; }) &&
            twin != p.g.axes) {
          borrowed = &*q.done->slop;
          p.g.slop_from = twin;
        }
    }
    p.done = decompose_sweep(p.points, borrowed);
  }
  std::vector<GroupDecomposition> out;
  for (auto& p : groups) {
    std::vector<std::pair<int, PointDecomposition>> decomposed;
    if (duplicate(p)) {
      for (std::size_t i = 0; i < p.points.size(); ++i)
        for (auto& d : decompose_sweep({p.points[i]}).points) decomposed.emplace_back(p.cells[i], std::move(d));
    } else {
      for (auto& d : p.done->points)
        for (std::size_t i = 0; i < p.points.size(); ++i)
          if (p.points[i].period_ns == d.period_ns) decomposed.emplace_back(p.cells[i], std::move(d));
    }
    if (decomposed.empty()) continue;
    GroupDecomposition g = std::move(p.g);
    if (!duplicate(p) && p.done) g.slop = p.done->slop;
    if (!g.slop) g.slop_from.reset();
    long long longest = -2;
    for (auto& [index, d] : decomposed) {
      const Cell& c = run.cells[static_cast<std::size_t>(index)];
      if (d.offset_ns && d.period_ns > longest) {
        longest = d.period_ns;
        g.reference_period = c.axis("period");
      }
      g.cells.push_back(DecomposedCell{index, c.axis("period"), std::move(d)});
    }
    std::stable_sort(g.cells.begin(), g.cells.end(), [](const DecomposedCell& a, const DecomposedCell& b) {
      return a.d.period_ns < b.d.period_ns;
    });
    out.push_back(std::move(g));
  }
  return out;
}

std::string slop_text(const GroupDecomposition& g) {
  if (!g.slop) return {};
  const SlopEstimate& e = *g.slop;
  auto us = [](long long ns) { return format_latency(std::chrono::nanoseconds(ns)); };
  std::string s;
  if (!e.seen) {
    s = "no timer slop seen: the sweep cannot tell a slop up to " + us(e.high_ns) + " from none";
  } else {
    s = "timer slop S = " + us(e.slop_ns) + " (" + us(e.low_ns) + " to " + us(e.high_ns) + ")";
  }
  if (g.slop_from) return s + ", borrowed from group " + label_of(*g.slop_from, "") + " (same period, no stress)";
  // A large misfit says the periods differ in a way no slop explains (docs: "Where it breaks").
  if (!e.seen) return s + " (model misfit " + us(e.misfit_ns) + ")";
  s += ", fitted to the period sweep (misfit " + us(e.misfit_ns) + ")";
  for (const auto& r : e.in_reach) {
    s += "; at " + us(r.period_ns) + ": floor lift gives " + us(r.floor_ns);
    if (r.missed_ns) s += ", missed periods give " + us(*r.missed_ns);
  }
  if (e.reference_in_reach) s += "; the longest period is itself within reach of the slop: S is a lower bound";
  return s;
}

std::string breakdown_svg(const Run& run, const std::string& backend, const std::vector<const GroupDecomposition*>& groups) {
  constexpr double kWidth = 960, kLabel = 300, kGap = 30, kRight = 24, kRow = 18, kTop = 34, kAxis = 26, kLegend = 22;
  const double panel = (kWidth - kLabel - 3 * kGap - kRight) / 3;
  std::size_t rows = 0;
  for (const auto* g : groups) rows += g->cells.size();
  const double height = kTop + kRow * static_cast<double>(rows) + kAxis + kLegend;
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot breakdown\" data-backend=\"" + html_escape(backend) +
                    "\" viewBox=\"0 0 " + coord(kWidth) + " " + coord(height) + "\" width=\"" + coord(kWidth) + "\" height=\"" +
                    coord(height) + "\"><title>" + html_escape("latency decomposition, backend " + backend) + "</title>";
  for (std::size_t s = 0; s < 3; ++s) {
    long long hi = 1;
    for (const auto* g : groups)
      for (const auto& c : g->cells) hi = std::max(hi, c.d.stats[s].total_ns);
    const double x0 = kLabel + kGap + static_cast<double>(s) * (panel + kGap);
    Axis probe = Axis::linear(0, static_cast<double>(hi) / 1000.0, x0, x0 + panel);
    auto ticks = probe.ticks(3);
    double step = ticks.size() > 1 ? ticks[1] - ticks[0] : static_cast<double>(hi) / 1000.0;
    Axis x = Axis::linear(0, std::ceil(static_cast<double>(hi) / 1000.0 / step - 1e-9) * step, x0, x0 + panel);
    const double bottom = kTop + kRow * static_cast<double>(rows);
    out += "<text class=\"axis-title\" x=\"" + coord(x0 + panel / 2) + "\" y=\"" + coord(kTop - 12) +
           "\" text-anchor=\"middle\">" + std::string(kStats[s]) + "</text>";
    for (double t : x.ticks(3)) {
      double px = x.px(t);
      out += "<line class=\"grid\" x1=\"" + coord(px) + "\" x2=\"" + coord(px) + "\" y1=\"" + coord(kTop - 4) + "\" y2=\"" +
             coord(bottom) + "\"/><text class=\"tick\" x=\"" + coord(px) + "\" y=\"" + coord(bottom + 14) +
             "\" text-anchor=\"middle\">" + html_escape(short_latency_us(t)) + "</text>";
    }
    std::size_t row = 0;
    for (const auto* g : groups)
      for (const auto& c : g->cells) {
        const Breakdown& b = c.d.stats[s];
        const std::string& id = run.cells[static_cast<std::size_t>(c.cell)].id;
        double y = kTop + kRow * static_cast<double>(row++) + 3, left = 0;
        auto part = [&](const char* cls, const char* what, long long ns) {
          double w = x.px(static_cast<double>(left + ns) / 1000.0) - x.px(static_cast<double>(left) / 1000.0);
          out += "<rect class=\"part " + std::string(cls) + "\" data-cell-id=\"" + html_escape(id) + "\" data-stat=\"" +
                 kStats[s] + "\" data-ns=\"" + std::to_string(ns) + "\" x=\"" + coord(x.px(static_cast<double>(left) / 1000.0)) +
                 "\" y=\"" + coord(y) + "\" width=\"" + coord(w) + "\" height=\"" + coord(kRow - 6) + "\"><title>" +
                 html_escape(id + " " + kStats[s] + ": " + what + " " + format_latency(std::chrono::nanoseconds(ns))) +
                 "</title></rect>";
          left += ns;
        };
        part("timer", "L_timer", b.timer_ns);
        if (b.irq_np_ns) {
          part("irq", "L_np until the timer IRQ", *b.irq_np_ns);
          part("np", "L_np after the timer IRQ", *b.thread_np_ns);
        } else {
          part("np", "L_np + I", b.np_ns);
        }
      }
  }
  std::size_t row = 0;
  for (const auto* g : groups)
    for (const auto& c : g->cells) {
      std::string label = label_of(g->axes, "backend");
      label = (c.period.empty() ? std::string() : c.period + (label.empty() ? "" : " · ")) + label;
      if (label.size() > 60) label = label.substr(0, 57) + "...";
      out += "<text class=\"row-label\" x=\"" + coord(kLabel) + "\" y=\"" + coord(kTop + kRow * static_cast<double>(row++) + 12) +
             "\" text-anchor=\"end\">" + html_escape(label) + "</text>";
    }
  const double ly = kTop + kRow * static_cast<double>(rows) + kAxis + 10;
  double lx = kLabel + kGap;
  bool timerlat = false;
  for (const auto* g : groups)
    for (const auto& c : g->cells) timerlat = timerlat || c.d.irq_p50_ns.has_value();
  for (auto [cls, text] : {std::pair{"timer", "L_timer (timer resolution)"}, std::pair{"irq", "L_np until the timer IRQ (timerlat)"},
                           std::pair{"np", timerlat ? "L_np + I after the timer IRQ" : "L_np + I"}}) {
    if (!timerlat && std::string(cls) == "irq") continue;
    out += "<rect class=\"part " + std::string(cls) + "\" x=\"" + coord(lx) + "\" y=\"" + coord(ly - 9) +
           "\" width=\"10\" height=\"10\"/><text class=\"legend\" x=\"" + coord(lx + 14) + "\" y=\"" + coord(ly) + "\">" +
           html_escape(text) + "</text>";
    lx += 30 + 6.2 * static_cast<double>(std::string_view(text).size());
  }
  out += "</svg>";
  return out;
}

json decomposition_json(const Run& run, const std::vector<GroupDecomposition>& groups) {
  json out = json::array();
  for (const auto& g : groups) {
    json axes = json::object();
    for (const auto& [k, v] : g.axes) axes[k] = v;
    json cells = json::array();
    for (const auto& c : g.cells) {
      json stats = json::object();
      for (const auto& b : c.d.stats) {
        json j{{"total_ns", b.total_ns}, {"timer_ns", b.timer_ns}, {"np_ns", b.np_ns}};
        if (b.irq_np_ns) {
          j["irq_np_ns"] = *b.irq_np_ns;
          j["thread_np_ns"] = *b.thread_np_ns;
        }
        stats[b.stat] = j;
      }
      cells.push_back(json{{"cell", run.cells[static_cast<std::size_t>(c.cell)].id},
                           {"period", c.period},
                           {"period_ns", c.d.period_ns},
                           {"offset_ns", c.d.offset_ns ? json(*c.d.offset_ns) : json(nullptr)},
                           {"irq_p50_ns", c.d.irq_p50_ns ? json(*c.d.irq_p50_ns) : json(nullptr)},
                           {"timer_source", c.d.timer_source},
                           {"stats", stats}});
    }
    json fit = nullptr;
    if (g.slop) {
      const SlopEstimate& e = *g.slop;
      json reach = json::array();
      for (const auto& r : e.in_reach)
        reach.push_back(json{{"period_ns", r.period_ns}, {"floor_ns", r.floor_ns}, {"missed_ns", r.missed_ns ? json(*r.missed_ns) : json(nullptr)}});
      fit = json{{"fit_ns", e.fit_ns}, {"misfit_ns", e.misfit_ns}, {"band_low_ns", e.band_low_ns}, {"band_high_ns", e.band_high_ns},
                 {"in_reach", reach}, {"reference_period_ns", e.reference_period_ns}, {"reference_in_reach", e.reference_in_reach}};
    }
    json from = nullptr;
    if (g.slop_from) {
      from = json::object();
      for (const auto& [k, v] : *g.slop_from) from[k] = v;
    }
    out.push_back(json{{"axes", axes}, {"backend", g.backend},
                       {"reference_period", g.reference_period.empty() ? json(nullptr) : json(g.reference_period)},
                       {"slop_ns", g.slop ? json(g.slop->slop_ns) : json(nullptr)},
                       {"slop_low_ns", g.slop ? json(g.slop->low_ns) : json(nullptr)},
                       {"slop_high_ns", g.slop ? json(g.slop->high_ns) : json(nullptr)},
                       {"slop_seen", g.slop ? json(g.slop->seen) : json(nullptr)},
                       {"slop_source", !g.slop ? json(nullptr) : g.slop_from ? json("borrowed") : json("period sweep")},
                       {"slop_from", from},
                       {"slop_fit", g.slop_from ? json(nullptr) : fit},
                       {"slop_text", slop_text(g)},
                       {"cells", cells}});
  }
  return out;
}

}  // namespace vmlat::report
