// `vmlat compare BASE... NEW`: per cell (and series) present in NEW and the
// baseline (one earlier run or a history of them), the change of p50, p99,
// p99.9 and max with a verdict from stats/history.hpp (regressed, improved,
// unchanged, inconclusive) at a confidence controlled over every statistic
// of the comparison; cells found on one side only or not measured are
// listed. docs/report.md, docs/statistics.md.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model.hpp"
#include "gates/regression.hpp"
#include "stats/history.hpp"

namespace vmlat::report {

struct CompareOptions {
  Tolerance tolerance;                     // every statistic (default 10%)
  std::map<std::string, Tolerance> per_stat;  // overrides: "max" -> 20us
  std::vector<StatName> stats = {{"p50", 0.50}, {"p99", 0.99}, {"p99.9", 0.999}, {"max", 0}};
  double confidence = 0.99;  // 1 - the comparison's false-alarm rate (docs/statistics.md)
  const Tolerance& tolerance_of(const std::string& stat) const;
};

// One statistic of a compared cell. The StatChange part compares the new
// value with the baseline's center: the one earlier run's value, or the
// history's median; `allowed` is the tolerance there. The verdict is the
// history's (with one or two earlier runs: the tolerance rule, no spread).
struct StatComparison : StatChange {
  stats::StatisticTest test;
  stats::StatisticVerdict verdict;
  bool regression() const { return verdict.verdict == stats::Verdict::regressed; }
  bool improvement() const { return verdict.verdict == stats::Verdict::improved; }
  bool inconclusive() const { return verdict.verdict == stats::Verdict::inconclusive; }
};


// A recorded setting that differs between the two runs' cells (kernel,
// command line, clocksource, governor, kvm module parameters, QEMU/Xen
// version, guest kernel...): what may explain a latency change.
struct FactChange {
  std::string path;  // "host.tuning.clocksource", "backend.guest.system.kernel_release"
  std::string base, now;  // JSON text; "(absent)" where one side lacks it
  bool operator==(const FactChange& o) const { return path == o.path && base == o.base && now == o.now; }
};
// The facts of two cell results that differ, volatile ones (pids, thread
// ids, paths, timings, boot times, argv) left out.
std::vector<FactChange> fact_changes(const json* base_result, const json* new_result);

struct CellComparison {
  std::string id;
  std::string series;
  std::vector<std::pair<std::string, std::string>> axes;
  std::vector<StatComparison> changes;
  std::vector<FactChange> facts;  // those not already in Comparison::common_facts
  bool regression() const;
  bool improvement() const;   // something improved and nothing regressed
  bool inconclusive() const;  // something inconclusive, nothing regressed or improved
  std::string verdict() const;  // regressed, improved, inconclusive, unchanged
};

struct Unpaired {
  std::string id;
  std::string series;
  std::string base_status, new_status;  // "" where the cell is absent
  std::string error;                    // NEW's error for a cell not measured there
};

struct Comparison {
  // base_*: the newest run of the baseline (the one run of a single-run baseline).
  std::string base_dir, new_dir, base_run_id, new_run_id, base_plan, new_plan;
  std::vector<std::string> history;  // the baseline's run ids, oldest first
  std::string correction;            // the multiplicity correction used (with 3+ runs)
  std::size_t family = 0;            // statistics judged together
  CompareOptions options;
  std::vector<CellComparison> cells;       // measured in both, run order of NEW; regressions first when rendered
  std::vector<Unpaired> not_measured_in_new;  // in BASE but not measured (or absent) in NEW: exit 3
  std::vector<Unpaired> only_in_new;       // no baseline for it (absent or not measured in BASE)
  std::vector<Unpaired> skipped_in_both;   // not runnable on either host
  std::vector<FactChange> common_facts;    // facts that differ the same way in every compared cell
  int regressions() const;
  int improvements() const;
  int inconclusive_statistics() const;
  // 1 a regression beyond tolerance (wins: a measured regression is
  // evidence), else 3 a cell of BASE not measured in NEW, else 0.
  int exit_code() const;
};

// `history`: the baseline's runs, oldest first (at least one). Cells are
// matched by id; a cell's history is every run of it that measured it. Cells
// of BASE that NEW lacks are those of its newest run.
Comparison compare_runs(const std::vector<const Run*>& history, const Run& now, const CompareOptions& options);
Comparison compare_runs(const Run& base, const Run& now, const CompareOptions& options);

// The cells of the history whose facts compare_runs(history, now, ...) reads
// (for each series of each cell of NOW, the newest earlier run that
// measured it), as (index into `history`, cell id): a reader of many runs
// reads the facts of these only (CellContent::facts).
std::vector<std::pair<std::size_t, std::string>> fact_sources(const std::vector<const Run*>& history, const Run& now);

// "5 earlier runs (A .. B): BASE is their median; verdicts at confidence 99%
// over 24 statistics (benjamini-hochberg)", or that one run cannot judge spread.
std::string baseline_summary(const Comparison& c);
std::string compare_text(const Comparison& c);
std::string compare_markdown(const Comparison& c);
json compare_json(const Comparison& c);

}  // namespace vmlat::report
