// The seed's latency decomposition, L = L_timer + L_np + I, estimated per
// cell group from what vmlat measures: the period sweep (a timer that cannot
// fire sooner than some slop after it is armed lifts the latency of short
// periods by an offset) and timerlat's IRQ vs thread split. The method and
// its assumptions: docs/decomposition.md.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model.hpp"
#include "plots.hpp"

namespace vmlat::report {

// Nearest-rank quantile of a histogram, in ns: the lower edge of the bucket
// where the cumulative count reaches ceil(q x samples), clamped into
// [min, max]; a rank among the overflows is the max (results-format.md).
long long quantile_ns(const HistogramData& h, double q);

// How far `cell`'s distribution sits above `reference`'s: the median over
// u = 0.10, 0.11, ..., 0.90 of Q_cell(u) - Q_reference(u). Exact for a pure
// shift (up to the 1 us buckets); the tails, where load and not the timer
// decides, do not move it.
long long shift_ns(const HistogramData& cell, const HistogramData& reference);

// One cell's latency at one statistic, split in parts that add up to total.
struct Breakdown {
  std::string stat;  // p50, p99, max
  long long total_ns = 0;
  long long timer_ns = 0;  // L_timer: timer resolution (and delivery)
  long long np_ns = 0;     // L_np + I: everything after the timer interrupt was due to be raised
  // timerlat only, np_ns split: until the timer IRQ ran (IRQs off in the
  // guest or the vCPU not running), and from the IRQ to the thread running
  // (preemption off, other IRQs and softirqs, scheduling).
  std::optional<long long> irq_np_ns, thread_np_ns;
};

// What the decomposition needs of one measured cell: its period and the
// merged histograms of its default series and, for timerlat, of `irq`.
struct SweepPoint {
  long long period_ns = 0;
  const HistogramData* latency = nullptr;  // the default series (thread for timerlat)
  const HistogramData* irq = nullptr;      // timerlat's irq series, or null
  // The stored statistics of the default series / irq series (p50_ns, p99_ns,
  // max_ns), so that the breakdown matches the report's tables; computed from
  // the histograms when absent.
  const json* stats = nullptr;
  const json* irq_stats = nullptr;
};

struct PointDecomposition {
  long long period_ns = 0;
  std::optional<long long> offset_ns;    // shift over the group's longest period (>= 2 periods)
  std::optional<long long> irq_p50_ns;   // timerlat
  std::string timer_source;              // "timerlat irq p50", "period sweep", "period sweep reference"
  std::vector<Breakdown> stats;          // p50, p99, max
};

// The decomposition of one group of cells that differ only in their period
// (any order): empty when nothing can be estimated (a single period and no
// irq series). The longest period is the reference of the offsets.
std::vector<PointDecomposition> decompose_sweep(const std::vector<SweepPoint>& points);

struct DecomposedCell {
  int cell = 0;  // index into Run::cells
  std::string period;
  PointDecomposition d;
};
struct GroupDecomposition {
  std::vector<std::pair<std::string, std::string>> axes;  // every axis but period
  std::string backend;
  std::string reference_period;  // "" with a single period
  std::vector<DecomposedCell> cells;  // shortest period first
};
// Groups of the run's measured cells (the period sweep's rows; a cell without
// a period axis is a group of its own), in run order; only those with an
// estimate.
std::vector<GroupDecomposition> decompose_run(const Run& run);

// The stacked breakdown of one backend's groups as inline SVG: one row per
// cell, a panel per statistic (p50, p99, max), each with its own scale.
std::string breakdown_svg(const Run& run, const std::string& backend, const std::vector<const GroupDecomposition*>& groups);

json decomposition_json(const Run& run, const std::vector<GroupDecomposition>& groups);

// "-2.0us", "0ns", "+37.0us": an offset.
std::string offset_text(long long ns);

// One line: what the method is (for text outputs).
extern const char* const kDecompositionMethod;

}  // namespace vmlat::report
