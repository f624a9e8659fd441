// Inline SVG plots drawn by our own code for the pages without a script (a
// monitoring session's, the history page): a latency histogram with 1us bins
// on a log count axis (as OSADL's latency plots) and statistics across runs.
// The run report's page draws its histograms and complementary CDFs in its
// script (report_page.js) from the cells' data, with this geometry and these
// rules, so that both kinds of page look alike.
//
// The axes are small classes so that other plots (e.g. the worst case per
// interval of a monitoring session) reuse them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat::report {

// A stored histogram (results-format.md "histogram"), decoded once.
struct HistogramData {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> buckets;  // [k, k+1) us -> count, ascending
  std::uint64_t overflows = 0;
  long long min_ns = 0, max_ns = 0;
  std::uint64_t samples() const;
};
// nullopt if `h` is not a histogram document (or holds no samples).
std::optional<HistogramData> decode_histogram(const json& h);

// Maps a value to a pixel on a linear or a log10 scale.
class Axis {
 public:
  static Axis linear(double lo, double hi, double px_lo, double px_hi);
  static Axis log10(double lo, double hi, double px_lo, double px_hi);  // lo, hi > 0
  double px(double value) const;
  double lo() const { return lo_; }
  double hi() const { return hi_; }
  bool is_log() const { return log_; }
  // Tick values: decades on a log axis, 1/2/5 steps (about `target` of them) on a linear one.
  std::vector<double> ticks(int target = 6) const;

 private:
  bool log_ = false;
  double lo_ = 0, hi_ = 1, px_lo_ = 0, px_hi_ = 1;
};

// "5us", "250us", "1.5ms", "20ms" for axis labels.
std::string short_latency_us(double us);

// The histogram of one series: bars of 1us bins (bins narrower than a pixel
// are drawn as the tallest bin of that pixel column), overflows noted.
// `attributes` go into the <svg> tag as they are (the caller escapes them).
std::string histogram_svg(const HistogramData& h, const std::string& attributes);

// A statistic across runs: x is the run's number (1 = oldest), y the value.
struct SeriesLine {
  std::string label;      // legend text (escaped here)
  std::string css_class;  // e.g. "stat-max"
  std::vector<std::pair<double, double>> points;  // (run number, value in ns), ascending run numbers
};
// A vertical mark at run number `x` (a change point), its <title> the tooltip.
struct SeriesMark {
  double x = 0;
  std::string css_class;  // e.g. "change stat-max"
  std::string title;      // escaped here
  std::string attributes; // extra attributes of the mark's <line>, as they are (the caller escapes them)
};
// Lines over runs 1..`runs` on a log latency axis (p50 and max of one cell
// differ by decades), with each mark drawn across the plot.
std::string series_svg(const std::vector<SeriesLine>& lines, const std::vector<SeriesMark>& marks, std::size_t runs,
                       const std::string& attributes);

}  // namespace vmlat::report
