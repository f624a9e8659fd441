#include "plots.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "text_escape.hpp"

namespace vmlat::report {

namespace {

// Plot geometry (px): the same for every plot, so a page of cells lines up.
constexpr double kWidth = 560, kHeight = 220;
constexpr double kLeft = 56, kRight = 24, kTop = 20, kBottom = 36;
constexpr double kPlotLeft = kLeft, kPlotRight = kWidth - kRight, kPlotTop = kTop, kPlotBottom = kHeight - kBottom;

// Coordinates with 0.1px resolution, "12.3" or "12" (keeps pages of 1,000 cells small).
void append_coord(std::string& out, double v) {
  long long tenths = std::llround(v * 10);
  if (tenths < 0) {
    out += '-';
    tenths = -tenths;
  }
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, tenths / 10);
  out.append(buf, r.ptr);
  if (tenths % 10) {
    out += '.';
    out += static_cast<char>('0' + tenths % 10);
  }
}

std::string coord(double v) {
  std::string s;
  append_coord(s, v);
  return s;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string count_text(double v) {
  if (v >= 1e6) return number_text(v / 1e6) + "M";
  if (v >= 1e3) return number_text(v / 1e3) + "k";
  return number_text(v);
}

void open_svg(std::string& out, const std::string& attributes, const std::string& title) {
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ";
  append_coord(out, kWidth);
  out += ' ';
  append_coord(out, kHeight);
  out += "\" width=\"";
  append_coord(out, kWidth);
  out += "\" height=\"";
  append_coord(out, kHeight);
  out += "\" ";
  out += attributes;
  out += "><title>";
  out += html_escape(title);
  out += "</title>";
}

// Frame, ticks, grid lines and labels of both axes.
void draw_axes(std::string& out, const Axis& x, const Axis& y, const std::string& x_title, const std::string& y_title,
               std::string (*x_label)(double), std::string (*y_label)(double)) {
  out += "<g class=\"axes\"><rect class=\"frame\" x=\"" + coord(kPlotLeft) + "\" y=\"" + coord(kPlotTop) + "\" width=\"" +
         coord(kPlotRight - kPlotLeft) + "\" height=\"" + coord(kPlotBottom - kPlotTop) + "\"/>";
  for (double t : x.ticks()) {
    double px = x.px(t);
    out += "<line class=\"grid\" x1=\"" + coord(px) + "\" x2=\"" + coord(px) + "\" y1=\"" + coord(kPlotTop) + "\" y2=\"" +
           coord(kPlotBottom) + "\"/><text class=\"tick\" x=\"" + coord(px) + "\" y=\"" + coord(kPlotBottom + 14) +
           "\" text-anchor=\"middle\">" + html_escape(x_label(t)) + "</text>";
  }
  for (double t : y.ticks()) {
    double py = y.px(t);
    out += "<line class=\"grid\" y1=\"" + coord(py) + "\" y2=\"" + coord(py) + "\" x1=\"" + coord(kPlotLeft) + "\" x2=\"" +
           coord(kPlotRight) + "\"/><text class=\"tick\" x=\"" + coord(kPlotLeft - 4) + "\" y=\"" + coord(py + 4) +
           "\" text-anchor=\"end\">" + html_escape(y_label(t)) + "</text>";
  }
  out += "<text class=\"axis-title\" x=\"" + coord((kPlotLeft + kPlotRight) / 2) + "\" y=\"" + coord(kHeight - 4) +
         "\" text-anchor=\"middle\">" + html_escape(x_title) + "</text>";
  out += "<text class=\"axis-title\" transform=\"translate(12 " + coord((kPlotTop + kPlotBottom) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(y_title) + "</text></g>";
}

std::string latency_label(double us) { return short_latency_us(us); }
// Run numbers: whole ones only (a short history gets ticks at halves).
std::string run_label(double x) { return std::abs(x - std::round(x)) < 1e-9 ? number_text(std::round(x)) : std::string(); }
std::string count_label(double c) { return count_text(c); }

}  // namespace

std::uint64_t HistogramData::samples() const {
  std::uint64_t n = overflows;
  for (const auto& [k, c] : buckets) n += c;
  return n;
}

std::optional<HistogramData> decode_histogram(const json& h) {
  if (!h.is_object()) return std::nullopt;
  HistogramData d;
  try {
    auto b = h.find("buckets");
    if (b == h.end() || !b->is_array()) return std::nullopt;
    d.buckets.reserve(b->size());
    for (const auto& pair : *b) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() || !pair[1].is_number_unsigned())
        return std::nullopt;
      auto k = pair[0].get<std::uint64_t>(), c = pair[1].get<std::uint64_t>();
      if (!d.buckets.empty() && k <= d.buckets.back().first) return std::nullopt;  // not ascending
      if (c) d.buckets.emplace_back(k, c);
    }
    d.overflows = h.value("overflows", std::uint64_t{0});
    d.min_ns = h.value("min_ns", 0LL);
    d.max_ns = h.value("max_ns", 0LL);
  } catch (const json::exception&) {
    return std::nullopt;
  }
  if (d.samples() == 0) return std::nullopt;
  return d;
}

Axis Axis::linear(double lo, double hi, double px_lo, double px_hi) {
  Axis a;
  a.lo_ = lo;
  a.hi_ = hi > lo ? hi : lo + 1;
  a.px_lo_ = px_lo;
  a.px_hi_ = px_hi;
  return a;
}

Axis Axis::log10(double lo, double hi, double px_lo, double px_hi) {
  Axis a = linear(std::log10(lo), std::log10(std::max(hi, lo * 10)), px_lo, px_hi);
  a.log_ = true;
  return a;
}

double Axis::px(double value) const {
  double v = log_ ? std::log10(std::max(value, 1e-300)) : value;
  return px_lo_ + (v - lo_) / (hi_ - lo_) * (px_hi_ - px_lo_);
}

std::vector<double> Axis::ticks(int target) const {
  std::vector<double> out;
  if (log_) {
    for (int e = static_cast<int>(std::ceil(lo_ - 1e-9)); e <= static_cast<int>(std::floor(hi_ + 1e-9)); ++e)
      out.push_back(std::pow(10.0, e));
    return out;
  }
  double raw = (hi_ - lo_) / std::max(target, 1);
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  for (double t = std::ceil(lo_ / step) * step; t <= hi_ + step * 1e-9; t += step) out.push_back(t);
  return out;
}

std::string short_latency_us(double us) {
  if (us == 0) return "0";
  if (us >= 1e6) return number_text(us / 1e6) + "s";
  if (us >= 1e3) return number_text(us / 1e3) + "ms";
  return number_text(us) + "µs";
}

namespace {

// The histograms' axes: latency from 0 to a round edge past the largest
// bin and max, count on a log axis from 0.5 (count 1 stands out from the axis).
std::pair<Axis, Axis> histogram_axes(const std::vector<const HistogramData*>& all) {
  std::uint64_t tallest = 1;
  double x_hi = 1.0;
  for (const HistogramData* h : all) {
    for (const auto& [k, c] : h->buckets) tallest = std::max(tallest, c);
    double last_us = h->buckets.empty() ? 1.0 : static_cast<double>(h->buckets.back().first + 1);
    x_hi = std::max({x_hi, last_us, std::ceil(static_cast<double>(h->max_ns) / 1000.0)});
  }
  // A round right edge: the next tick of a 1/2/5 scale.
  Axis probe = Axis::linear(0, x_hi, kPlotLeft, kPlotRight);
  auto ticks = probe.ticks();
  double step = ticks.size() > 1 ? ticks[1] - ticks[0] : x_hi;
  x_hi = std::ceil(x_hi / step - 1e-9) * step;
  return {Axis::linear(0, x_hi, kPlotLeft, kPlotRight),
          Axis::log10(0.5, std::pow(10.0, std::ceil(std::log10(static_cast<double>(tallest)) + 1e-9)), kPlotBottom, kPlotTop)};
}

// A line's legend entry (a short stroke of its class and its label); the
// next entry goes below.
void legend_entry(std::string& out, const std::string& label, const std::string& css_class, double& legend_y) {
  out += "<line class=\"line " + html_escape(css_class) + "\" x1=\"" + coord(kPlotRight - 150) + "\" x2=\"" +
         coord(kPlotRight - 130) + "\" y1=\"" + coord(legend_y - 4) + "\" y2=\"" + coord(legend_y - 4) +
         "\"/><text class=\"legend\" x=\"" + coord(kPlotRight - 126) + "\" y=\"" + coord(legend_y) + "\">" +
         html_escape(label) + "</text>";
  legend_y += 13;
}

}  // namespace

std::string histogram_svg(const HistogramData& h, const std::string& attributes) {
  const auto [x, y] = histogram_axes({&h});

  std::string out;
  out.reserve(1024 + h.buckets.size() * 24);
  open_svg(out, attributes, "latency histogram, 1 µs bins, log count axis");
  draw_axes(out, x, y, "latency (1 µs bins)", "count (log)", latency_label, count_label);
  out += "<path class=\"bars\" d=\"";
  // Bins narrower than a pixel: the tallest bin of each pixel column.
  std::size_t i = 0;
  while (i < h.buckets.size()) {
    double x0 = x.px(static_cast<double>(h.buckets[i].first));
    double x1 = x.px(static_cast<double>(h.buckets[i].first + 1));
    std::uint64_t count = h.buckets[i].second;
    ++i;
    if (x1 - x0 < 1.0) {
      double column = std::floor(x0);
      x0 = column;
      x1 = column + 1;
      while (i < h.buckets.size() && std::floor(x.px(static_cast<double>(h.buckets[i].first))) == column) {
        count = std::max(count, h.buckets[i].second);
        ++i;
      }
    }
    out += 'M';
    append_coord(out, x0);
    out += ' ';
    append_coord(out, kPlotBottom);
    out += 'V';
    append_coord(out, y.px(static_cast<double>(count)));
    out += 'H';
    append_coord(out, x1);
    out += 'V';
    append_coord(out, kPlotBottom);
    out += 'Z';
  }
  out += "\"/>";
  // The exact worst case, which a bin edge only approximates.
  double max_px = x.px(static_cast<double>(h.max_ns) / 1000.0);
  out += "<line class=\"max\" x1=\"" + coord(max_px) + "\" x2=\"" + coord(max_px) + "\" y1=\"" + coord(kPlotTop) +
         "\" y2=\"" + coord(kPlotBottom) + "\"/>";
  if (h.overflows) {
    out += "<text class=\"note\" x=\"" + coord(kPlotRight - 4) + "\" y=\"" + coord(kPlotTop + 14) +
           "\" text-anchor=\"end\">" + std::to_string(h.overflows) + " overflow" + (h.overflows == 1 ? "" : "s") +
           " beyond the histogram range, max " + html_escape(short_latency_us(static_cast<double>(h.max_ns) / 1000.0)) +
           "</text>";
  }
  out += "</svg>";
  return out;
}

std::string series_svg(const std::vector<SeriesLine>& lines, const std::vector<SeriesMark>& marks, std::size_t runs,
                       const std::string& attributes) {
  double lo_us = 1e300, hi_us = 0;
  for (const auto& l : lines)
    for (const auto& p : l.points) {
      lo_us = std::min(lo_us, std::max(p.second / 1000.0, 0.1));
      hi_us = std::max(hi_us, p.second / 1000.0);
    }
  if (hi_us <= 0) lo_us = hi_us = 1;
  // Whole decades around the values, with the top decade or so kept free for
  // the legend; half a run of room at either end of the runs.
  Axis x = Axis::linear(0.5, static_cast<double>(std::max<std::size_t>(runs, 1)) + 0.5, kPlotLeft, kPlotRight);
  Axis y = Axis::log10(std::pow(10.0, std::floor(std::log10(lo_us) + 1e-9)),
                       std::pow(10.0, std::ceil(std::log10(hi_us * 8) - 1e-9)), kPlotBottom, kPlotTop);
  std::string out;
  out.reserve(2048);
  open_svg(out, attributes, "statistics across runs, log latency axis");
  draw_axes(out, x, y, "run (1 = oldest)", "latency (log)", run_label, latency_label);
  for (const auto& m : marks) {
    const double px = x.px(m.x);
    out += "<line class=\"" + html_escape(m.css_class) + "\" x1=\"" + coord(px) + "\" x2=\"" + coord(px) + "\" y1=\"" +
           coord(kPlotTop) + "\" y2=\"" + coord(kPlotBottom) + "\" " + m.attributes + "><title>" + html_escape(m.title) +
           "</title></line>";
  }
  double legend_y = kPlotTop + 12;
  for (const auto& l : lines) {
    if (l.points.empty()) continue;
    out += "<path class=\"line " + html_escape(l.css_class) + "\" d=\"";
    for (std::size_t i = 0; i < l.points.size(); ++i) {
      out += i == 0 ? 'M' : 'L';
      append_coord(out, x.px(l.points[i].first));
      out += ' ';
      append_coord(out, y.px(std::max(l.points[i].second / 1000.0, 0.1)));
    }
    // A lone run is a point, not a line: a zero-length stroke with round caps shows it.
    if (l.points.size() == 1) out += "h0.1";
    out += "\"/>";
    legend_entry(out, l.label, l.css_class, legend_y);
  }
  out += "</svg>";
  return out;
}

}  // namespace vmlat::report
