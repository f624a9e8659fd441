#include "decompose.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "json_access.hpp"
#include "text_escape.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

const char* const kDecompositionMethod =
    "L = L_timer + L_np + I (docs/decomposition.md). L_timer: timerlat's median IRQ latency where the cell has an irq "
    "series, else the period sweep's offset (median shift of the latency quantiles 10%..90% over the group's longest "
    "period; the longest period itself counts 0). L_np + I: the rest of the statistic; with timerlat split at the "
    "IRQ latency of the same statistic. I is taken as 0: the probe runs at a high RT priority (95 by default) with nothing at or above it expected on the "
    "measured CPUs.";

namespace {

constexpr const char* kStats[] = {"p50", "p99", "max"};

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

std::vector<PointDecomposition> decompose_sweep(const std::vector<SweepPoint>& points) {
  std::vector<const SweepPoint*> sorted;
  for (const auto& p : points)
    if (p.latency && p.latency->samples() > 0) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->period_ns < b->period_ns; });
  std::vector<PointDecomposition> out;
  if (sorted.empty()) return out;
  const SweepPoint* reference = sorted.size() >= 2 ? sorted.back() : nullptr;
  if (reference && reference->period_ns == sorted.front()->period_ns) reference = nullptr;  // no sweep
  for (const SweepPoint* p : sorted) {
    PointDecomposition d;
    d.period_ns = p->period_ns;
    if (reference) d.offset_ns = p == reference ? 0 : shift_ns(*p->latency, *reference->latency);
    if (p->irq && p->irq->samples() > 0) d.irq_p50_ns = stat_ns(p->irq_stats, "p50", *p->irq);
    long long timer = 0;
    if (d.irq_p50_ns) {
      timer = *d.irq_p50_ns;
      d.timer_source = "timerlat irq p50";
    } else if (d.offset_ns) {
      timer = std::max(0LL, *d.offset_ns);
      d.timer_source = p == reference ? "period sweep reference" : "period sweep";
    } else {
      continue;  // nothing to estimate L_timer from
    }
    for (const char* stat : kStats) {
      Breakdown b;
      b.stat = stat;
      b.total_ns = std::max(0LL, stat_ns(p->stats, stat, *p->latency));
      // A constant delay is in every wake-up, so it is the same at every statistic.
      b.timer_ns = std::clamp(timer, 0LL, b.total_ns);
      b.np_ns = b.total_ns - b.timer_ns;
      if (d.irq_p50_ns) {
        long long irq = stat_ns(p->irq_stats, stat, *p->irq);
        b.irq_np_ns = std::clamp(irq - b.timer_ns, 0LL, b.np_ns);
        b.thread_np_ns = b.np_ns - *b.irq_np_ns;
      }
      d.stats.push_back(b);
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<GroupDecomposition> decompose_run(const Run& run) {
  struct Pending {
    GroupDecomposition g;
    std::vector<HistogramData> latency, irq;  // kept alive for the points
    std::vector<SweepPoint> points;
    std::vector<int> cells;
  };
  auto others = [](const Cell& c) {
    std::vector<std::pair<std::string, std::string>> axes;
    for (const auto& a : c.axes)
      if (a.first != "period") axes.push_back(a);
    return axes;
  };
  auto has_irq = [](const Cell& c) {
    return std::any_of(c.series.begin(), c.series.end(), [](const Series& s) { return s.name == "irq" && s.merged; });
  };
  // Histograms are decoded only where there is something to estimate: a
  // 1,000-cell run at one period costs nothing here.
  std::map<std::vector<std::pair<std::string, std::string>>, std::set<std::string>> periods;
  for (const auto& c : run.cells)
    if (c.measured() && !c.axis("period").empty()) periods[others(c)].insert(c.axis("period"));
  std::vector<Pending> groups;
  for (const auto& c : run.cells) {
    if (!c.measured() || c.series.empty() || !c.series.front().merged) continue;
    if (!has_irq(c) && (c.axis("period").empty() || periods[others(c)].size() < 2)) continue;
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
    g->latency.push_back(std::move(*latency));
    p.latency = &g->latency.back();
    p.stats = object_at(*c.series.front().merged, "stats");
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
  std::vector<GroupDecomposition> out;
  for (auto& p : groups) {
    // Two cells of one period in a group (a free axis the sweep does not
    // separate): the decomposition of a period sweep does not apply.
    std::map<long long, int> per_period;
    bool duplicate = false;
    for (const auto& pt : p.points) duplicate = duplicate || ++per_period[pt.period_ns] > 1;
    const std::vector<SweepPoint>& points = p.points;
    std::vector<std::pair<int, PointDecomposition>> decomposed;
    if (duplicate) {
      for (std::size_t i = 0; i < points.size(); ++i)
        for (auto& d : decompose_sweep({points[i]})) decomposed.emplace_back(p.cells[i], std::move(d));
    } else {
      auto ds = decompose_sweep(points);
      for (auto& d : ds)
        for (std::size_t i = 0; i < points.size(); ++i)
          if (points[i].period_ns == d.period_ns) decomposed.emplace_back(p.cells[i], std::move(d));
    }
    if (decomposed.empty()) continue;
    GroupDecomposition g = std::move(p.g);
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
    out.push_back(json{{"axes", axes}, {"backend", g.backend},
                       {"reference_period", g.reference_period.empty() ? json(nullptr) : json(g.reference_period)},
                       {"cells", cells}});
  }
  return out;
}

}  // namespace vmlat::report
