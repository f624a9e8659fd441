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
#include "stats/history.hpp"
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

// A statistic's model across runs (docs/statistics.md): the max is a block
// maximum; percentiles are 1us bucket edges (min and mean exact).
stats::StatisticKind statistic_kind(const StatName& stat);
double statistic_resolution_ns(const StatName& stat);
// The history options of a statistic judged with `tolerance` at `confidence`.
stats::HistoryOptions history_options(const Tolerance& tolerance, double confidence);

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

// The result.json of a cell of a stored run by id, or nullptr.
const json* find_cell_result(const StoredRun& run, const std::string& id);

// The runs of a baseline, oldest first (by `started`). `path` is a run
// directory (or a link to one: that run), or a results directory: every
// complete run there of `plan` (any plan when empty) that started no later
// than `started_by` (no limit when empty), the run directory `exclude` left
// out. Throws std::runtime_error saying why when there is none.
// `content`: how much of each result.json is read (run_store.hpp); the
// run.json of every run is read first, and the cells of the runs kept only.
std::vector<StoredRun> load_baseline_runs(const std::string& path, const std::string& plan,
                                          const std::string& started_by = "", const std::string& exclude = "",
                                          const CellContent& content = {});
// What of each result.json stored_statistic needs for these statistics: a
// summary that keeps a series' histogram only where its `stats` lack one.
CellContent content_for(const std::vector<StatName>& stats);

// A baseline as a regression gate uses it (one run or a history): loaded
// once, by preload_baselines before the first cell (or on first use),
// shared by every gate of the plan that names the same directory. A
// directory that cannot be read is remembered as the error every such gate
// reports.
class BaselineRun {
 public:
  explicit BaselineRun(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  // Loads now; a results directory's complete runs of `plan` only.
  void preload(const std::string& plan) const;
  // The newest run, or nullptr with `error()` saying why.
  const StoredRun* run() const;
  // Every run, oldest first (empty with `error()` saying why).
  const std::vector<StoredRun>& runs() const;
  const std::string& error() const;
  // The result.json of a cell by id in the newest run, or nullptr.
  const json* cell(const std::string& id) const;

 private:
  void load(const std::string& plan) const;
  std::string path_;
  mutable bool loaded_ = false;
  mutable std::vector<StoredRun> runs_;
  mutable std::string error_;
};
// The shared BaselineRun of a path (as written in the plan, relative to the
// working directory like [plan] results).
std::shared_ptr<const BaselineRun> baseline_run(const std::string& path);

// `regression = { baseline = "results/last-good", tolerance = "10%", last = 0 }`.
struct RegressionSpec {
  std::shared_ptr<const BaselineRun> baseline;
  Tolerance tolerance;
  std::size_t last = 0;  // the newest `last` runs of the baseline only; 0: all
};

// The verdict of a regression gate for one cell (GateSpec::regression set):
//   the cell skipped          -> skipped (as any gate)
//   the cell not measured     -> error   (as any gate: never a pass)
//   the baseline unreadable   -> error   (an infrastructure error, exit 3)
//   the cell not in the baseline, or not measured there
//                             -> skipped, the message says so (a new cell has
//                                no baseline yet; the run stays promotable)
//   else the history's verdict (stats/history.hpp) at the gate's confidence,
//   corrected as one of `family_size` statistics (the cells the gate
//   matches): fail when `regressed`, else pass (inconclusive passes and says
//   so). One or two earlier runs: the tolerance rule against their median.
//   `bound` is the smallest value that would be regressed on its own; `extra`
//   carries baseline_ns (the median), baseline_run (the newest),
//   baseline_runs, tolerance, history_verdict, confidence, method, p, why.
GateResult evaluate_regression_gate(const GateSpec& gate, const CellSpec& cell, CellStatus status,
                                    const std::string& cell_error, const Histogram* merged,
                                    std::size_t family_size = 1);

// Loads every regression gate's baseline now and warns on `err` about those
// that cannot be read (their verdicts will be errors): said before the first
// cell, not after an hour of measuring.
void preload_baselines(const Plan& plan, std::ostream& err);

}  // namespace vmlat
