// The tail model of a report's cells (docs/statistics.md, "Tail model"):
// peaks over threshold fitted to the default series' merged histogram,
// return levels for 1 h and 24 h of operation at the cell's period, the
// exceedance rate of each max gate's bound, and how long a run must be to
// support that bound (docs/report.md, "Tail").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model.hpp"
#include "stats/tail.hpp"

namespace vmlat::report {

struct CellTail {
  stats::TailFit fit;
  std::vector<stats::RunLength> run_lengths;  // one per max bound of the cell's gates
  // The same model of each CPU's histogram of the default series, in CPU
  // order, over the same measuring time (return levels and rates are that
  // CPU's); no run lengths: a gate bounds the cell's max, not a CPU's.
  std::vector<std::pair<std::string, stats::TailFit>> per_cpu;
};

// The tail of a measured cell (nullopt: nothing measured, or no histogram).
// The measuring time is result.json's timings.phases.measure_s, else
// samples x the cell's period; `confidence` is that of the run lengths.
std::optional<CellTail> cell_tail(const Cell& cell, double confidence = 0.99);

// cell_tail of every cell of a run, in run order (fitted by one worker per
// core: the fits are independent); all nullopt when `enabled` is false.
std::vector<std::optional<CellTail>> run_tails(const Run& run, bool enabled = true);

// stats::to_json of the fit plus `run_length`: [{bound_ns, confidence,
// seconds, at_least, basis}] and `per_cpu`: CPU -> the same shape (its
// run_length empty).
json tail_json(const CellTail& tail);

// "about 3.2 h", "at least 10 s (no exceedance seen yet)": a run length for people.
std::string run_length_text(const stats::RunLength& r);
// "to claim max <= 50us at 99% you need about 3.2 h at this period"
std::string run_length_sentence(const stats::RunLength& r);

// One row of the report's tail table, as text (Markdown and HTML escape it).
struct TailRow {
  std::string model;        // "gpd", or "empirical: <why>"
  std::string threshold;    // "120us" or "–"
  std::string exceedances;  // "214"
  std::string gof_p;        // "0.41" or "–"
  std::string rl1h, rl24h;  // "1.2ms [0.9ms, 2.1ms]" or "– (empirical max 3.4ms)"
  std::string bounds;       // "50us: 0.3/h [0.1, 0.9]; ..." or "–"
  std::vector<std::string> run_lengths;  // run_length_sentence of each bound
};
TailRow tail_row(const CellTail& tail);

}  // namespace vmlat::report
