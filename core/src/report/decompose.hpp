// The seed's latency decomposition, L = L_timer + L_np + I, estimated per
// cell group from what vmlat measures: the period sweep, read through the
// timer-slop mechanism (a timer that cannot fire sooner than S after it is
// armed, and a probe that skips the periods it missed), and timerlat's IRQ vs
// thread split. The model, the estimator and where they break:
// docs/decomposition.md.
#pragma once

#include <cstdint>
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
  // The default series' exact mean and the periods the probe skipped
  // (vmlat-probe counts them; cyclictest and timerlat do not: nullopt).
  std::optional<long long> mean_ns;
  std::optional<std::uint64_t> missed_periods;
};

// The slop of a group: sigma, the shortest time from a wake-up (the probe's
// clock reading) to the next timer interrupt: the clockevent device's minimum
// delta plus the probe's own time to re-arm. Under it, the wake-up after one
// of latency L has the timer part max(0, sigma - P + (L mod P)).
struct SlopEstimate {
  long long slop_ns = 0;               // 0: no slop seen
  long long low_ns = 0, high_ns = 0;   // the interval (docs/decomposition.md, "Estimator")
  bool seen = false;                   // false: the sweep cannot tell it from none; high_ns bounds it
  long long fit_ns = 0;                // the best fit of the model to the sweep's central quantiles
  long long misfit_ns = 0;             // its mean |quantile difference|, summed over the cells
  long long band_low_ns = 0, band_high_ns = 0;  // slops that fit within one microsecond of misfit of the best
  // Cells whose whole body the slop lifts (period <= slop): their floor lift
  // and, where the probe counts them, their missed periods give it again.
  struct InReach {
    long long period_ns = 0;
    long long floor_ns = 0;
    std::optional<long long> missed_ns;
  };
  std::vector<InReach> in_reach;
  long long reference_period_ns = 0;
  bool reference_in_reach = false;  // the longest period is itself lifted: the estimate is a lower bound
};

// The slop of a group of cells that differ only in their period (>= 2
// periods; the longest is the reference, taken as the timer-free noise).
std::optional<SlopEstimate> estimate_slop(const std::vector<SweepPoint>& points);

// The timer part under `slop_ns` of the wake-ups of a cell at `period_ns`,
// at quantile q (nearest rank; q = 1: the largest): each bucketed sample L
// sets the timer part max(0, slop - P + (L mod P)) of the wake-up after it.
long long timer_part_ns(const HistogramData& cell, long long period_ns, long long slop_ns, double q);

struct PointDecomposition {
  long long period_ns = 0;
  std::optional<long long> offset_ns;    // median quantile shift over the group's longest period (descriptive)
  std::optional<long long> irq_p50_ns;   // timerlat
  std::string timer_source;              // "timerlat irq p50", "slop model", "slop model (borrowed)"
  std::vector<Breakdown> stats;          // p50, p99, max
};

struct SweepDecomposition {
  std::optional<SlopEstimate> slop;  // estimated here, or the borrowed one
  std::vector<PointDecomposition> points;
};

// The decomposition of one group of cells that differ only in their period
// (any order): no points when nothing can be estimated (a single period, no
// irq series, nothing borrowed). `borrowed`: the slop of another group (the
// same cells without stress), used instead of an estimate of this group's.
SweepDecomposition decompose_sweep(const std::vector<SweepPoint>& points, const SlopEstimate* borrowed = nullptr);

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
  std::optional<SlopEstimate> slop;
  // Set when the slop is borrowed: the axes of the group it comes from (these
  // axes with workload=none, a period sweep that measured the same period).
  std::optional<std::vector<std::pair<std::string, std::string>>> slop_from;
};
// Groups of the run's measured cells (the period sweep's rows; a cell without
// a period axis is a group of its own), in run order; only those with an
// estimate. A group at a single period whose workload is not "none" borrows
// the slop of its no-stress twin.
std::vector<GroupDecomposition> decompose_run(const Run& run);

// The stacked breakdown of one backend's groups as inline SVG: one row per
// cell, a panel per statistic (p50, p99, max), each with its own scale.
std::string breakdown_svg(const Run& run, const std::string& backend, const std::vector<const GroupDecomposition*>& groups);

json decomposition_json(const Run& run, const std::vector<GroupDecomposition>& groups);

// "-2.0us", "0ns", "+37.0us": an offset.
std::string offset_text(long long ns);

// One sentence: a group's slop, its interval and where it comes from.
std::string slop_text(const GroupDecomposition& g);

// One line: what the method is (for text outputs).
extern const char* const kDecompositionMethod;

}  // namespace vmlat::report
