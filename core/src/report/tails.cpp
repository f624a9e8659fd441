#include "tails.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>

#include "gates/expect.hpp"
#include "json_access.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {

// The bounds of the cell's max gates (a regression gate's bound moves with
// its baseline: not a bound of the system).
std::vector<double> max_bounds(const Cell& c) {
  std::vector<double> out;
  for (const json* g : c.gates) {
    if (text_of(*g, "stat") != "max" || g->contains("baseline")) continue;
    const json& b = member(*g, "bound_ns");
    if (b.is_number() && b.get<double>() > 0) out.push_back(b.get<double>());
  }
  return out;
}

}  // namespace

namespace {
// The histogram of a series document, or nullopt (absent, unreadable, empty).
std::optional<Histogram> histogram_of(const json* series) {
  if (!series) return std::nullopt;
  const json& hist = member(*series, "histogram");
  if (!hist.is_object()) return std::nullopt;
  try {
    Histogram h = Histogram::from_json(hist);
    if (!h.empty()) return h;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}
}  // namespace

std::optional<CellTail> cell_tail(const Cell& c, double confidence) {
  if (!c.measured() || !c.result || c.series.empty() || !c.series.front().merged) return std::nullopt;
  const auto h = histogram_of(c.series.front().merged);
  if (!h) return std::nullopt;
  stats::TailOptions options;
  options.bounds_ns = max_bounds(c);
  CellTail t;
  const double seconds = measured_seconds(*c.result, h->samples());
  t.fit = stats::fit_tail(*h, seconds, options);
  for (double b : options.bounds_ns) t.run_lengths.push_back(stats::run_length_for_bound(t.fit, *h, b, confidence));
  // Each CPU measured over the same time as the cell: its own sample rate.
  for (const auto& [cpu, doc] : c.series.front().per_cpu)
    if (const auto one = histogram_of(doc)) t.per_cpu.emplace_back(cpu, stats::fit_tail(*one, seconds, options));
  return t;
}

std::vector<std::optional<CellTail>> run_tails(const Run& run, bool enabled) {
  std::vector<std::optional<CellTail>> out(run.cells.size());
  if (!enabled) return out;
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < out.size();) out[i] = cell_tail(run.cells[i]);
  };
  std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  threads = std::min(threads, out.size() / 32 + 1);  // a few cells: no threads
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return out;
}

json tail_json(const CellTail& t) {
  json j = stats::to_json(t.fit);
  json per_cpu = json::object();
  for (const auto& [cpu, fit] : t.per_cpu) {
    per_cpu[cpu] = stats::to_json(fit);
    per_cpu[cpu]["run_length"] = json::array();
  }
  json lengths = json::array();
  for (const auto& r : t.run_lengths)
    lengths.push_back(json{{"bound_ns", r.bound_ns},
                           {"confidence", r.confidence},
                           {"seconds", std::isfinite(r.seconds) ? json(r.seconds) : json(nullptr)},
                           {"at_least", r.at_least},
                           {"basis", r.basis}});
  j["run_length"] = lengths;
  j["per_cpu"] = per_cpu;
  return j;
}

std::string run_length_text(const stats::RunLength& r) {
  if (std::isnan(r.seconds)) return "unknown";
  if (std::isinf(r.seconds)) return "no run length (the bound lies beyond the fitted tail's end)";
  char buf[64];
  const double s = r.seconds;
  if (s < 120) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 7200) std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return r.at_least ? std::string("at least ") + buf + " (no exceedance seen yet)" : std::string("about ") + buf;
}

}  // namespace vmlat::report

namespace vmlat::report {

namespace {
std::string ns_text(double ns) {
  if (std::isnan(ns)) return "–";
  if (std::isinf(ns)) return "unbounded";
  return format_latency(std::chrono::nanoseconds(std::llround(ns)));
}
std::string number(double x, const char* format = "%.2g") {
  if (!std::isfinite(x)) return "–";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}
std::string level_text(const stats::TailFit& fit, double horizon_s) {
  for (const auto& r : fit.return_levels)
    if (r.horizon_s == horizon_s && !std::isnan(r.value_ns))
      return ns_text(r.value_ns) + " [" + ns_text(r.low_ns) + ", " + ns_text(r.high_ns) + "]";
  return "– (max " + ns_text(fit.max_ns) + ")";
}
}  // namespace

std::string run_length_sentence(const stats::RunLength& r) {
  return "to claim max <= " + ns_text(r.bound_ns) + " at " + number(100 * r.confidence, "%g") + "% you need " +
         run_length_text(r) + " at this period (" + r.basis + ")";
}

TailRow tail_row(const CellTail& t) {
  const auto& f = t.fit;
  TailRow row;
  row.model = f.fitted() ? f.method : "empirical" + (f.reason.empty() ? std::string() : ": " + f.reason);
  row.threshold = ns_text(f.threshold_ns);
  row.exceedances = std::to_string(f.exceedances);
  row.gof_p = number(f.gof_p);
  row.rl1h = level_text(f, 3600.0);
  row.rl24h = level_text(f, 86400.0);
  for (const auto& b : f.bound_exceedance)
    row.bounds += (row.bounds.empty() ? "" : "; ") + ns_text(b.bound_ns) + ": " + number(b.per_hour) + "/h [" +
                  number(b.per_hour_low) + ", " + number(b.per_hour_high) + "] (" + b.basis + ")";
  if (row.bounds.empty()) row.bounds = "–";
  for (const auto& r : t.run_lengths) row.run_lengths.push_back(run_length_sentence(r));
  return row;
}

}  // namespace vmlat::report
