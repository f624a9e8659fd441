// Comparing a measurement with a baseline run: tolerances, statistics read
// from stored results, and regression gates (`[[gate]] regression = {...}`).
// Shared by `vmlat compare` (core/src/report) and the runner's gates, so that
// both say the same thing about the same pair of numbers.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cell/status.hpp"
#include "gates/gate_result.hpp"
#include "run_store.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct GateSpec;
struct CellSpec;
struct Plan;

// A latency statistic by name: max, min, mean, pNN (p50, p99, p99.9, ...).
struct StatName {
  std::string name;
  double quantile = 0;  // pNN: NN/100; 0 for max, min, mean
};
// nullopt (and *why) if `text` is not a statistic.
std::optional<StatName> parse_stat_name(std::string_view text, std::string* why = nullptr);

// How much a statistic may grow over its baseline before it is a regression:
// a fraction of the baseline ("10%") or an absolute duration ("20us").
// The allowed growth is never below the statistic's resolution: percentiles
// are 1us bucket edges, so a one-bucket move is not a regression; max, min
// and mean are exact.
struct Tolerance {
  bool relative = true;
  double fraction = 0.10;
  std::chrono::nanoseconds absolute{0};
  std::string text = "10%";
  std::chrono::nanoseconds allowed(std::chrono::nanoseconds base, const StatName& stat) const;
};
// "10%", "2.5%", "20us", "1ms" (a duration needs its unit). nullopt + *why on error.
std::optional<Tolerance> parse_tolerance(std::string_view text, std::string* why = nullptr);

// The statistic of a stored series ({"stats": ..., "histogram": ...}, as
// result.json's `merged` and `per_cpu` entries): from `stats` (written by the
// same Histogram code a live gate uses), other percentiles from the
// histogram. nullopt when neither holds it or the series has no samples.
std::optional<std::chrono::nanoseconds> stored_statistic(const json& series, const StatName& stat);

// One comparison of a statistic against its baseline.
struct StatChange {
  StatName stat;
  std::chrono::nanoseconds base{0}, value{0}, allowed{0};
  std::chrono::nanoseconds delta() const { return value - base; }
  std::chrono::nanoseconds bound() const { return base + allowed; }
  bool regression() const { return value > bound(); }
  bool improvement() const { return value < base - allowed; }
  // (value - base) / base; NaN when base is 0.
  double relative() const;
  // "max 80.0us vs baseline 50.0us (+30.0us, +60.0%)"
  std::string describe() const;
};
StatChange compare_statistic(const StatName& stat, std::chrono::nanoseconds base, std::chrono::nanoseconds value,
                             const Tolerance& tolerance);

// A baseline run as a regression gate uses it: loaded once, on first use
// (run_plan asks for it before the first cell), shared by every gate of the
// plan that names the same directory. A directory that cannot be read is
// remembered as the error every such gate reports.
class BaselineRun {
 public:
  explicit BaselineRun(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  // The run, or nullptr with `error()` saying why.
  const StoredRun* run() const;
  const std::string& error() const;
  // The result.json of a cell of the baseline by id, or nullptr.
  const json* cell(const std::string& id) const;

 private:
  void load() const;
  std::string path_;
  mutable bool loaded_ = false;
  mutable std::optional<StoredRun> run_;
  mutable std::string error_;
};
// The shared BaselineRun of a path (as written in the plan, relative to the
// working directory like [plan] results).
std::shared_ptr<const BaselineRun> baseline_run(const std::string& path);

// `regression = { baseline = "results/last-good", tolerance = "10%" }`.
struct RegressionSpec {
  std::shared_ptr<const BaselineRun> baseline;
  Tolerance tolerance;
};

// The verdict of a regression gate for one cell (GateSpec::regression set):
//   the cell skipped          -> skipped (as any gate)
//   the cell not measured     -> error   (as any gate: never a pass)
//   the baseline unreadable   -> error   (an infrastructure error, exit 3)
//   the cell not in the baseline, or not measured there
//                             -> skipped, the message says so (a new cell has
//                                no baseline yet; the run stays promotable)
//   else pass/fail against baseline + tolerance; `bound` is that sum, and
//   `extra` carries baseline_ns, baseline_run and tolerance for result.json.
GateResult evaluate_regression_gate(const GateSpec& gate, const CellSpec& cell, CellStatus status,
                                    const std::string& cell_error, const Histogram* merged);

// Loads every regression gate's baseline now and warns on `err` about those
// that cannot be read (their verdicts will be errors): said before the first
// cell, not after an hour of measuring.
void preload_baselines(const Plan& plan, std::ostream& err);

}  // namespace vmlat
