// `vmlat history RESULTS_DIR`: per cell and statistic the series across the
// complete runs of a plan, the change points found in them all together
// (stats/changepoint.hpp), and for each change the facts that differ between
// the runs on either side. docs/report.md, "vmlat history".
#pragma once

#include <string>
#include <vector>

#include "compare.hpp"
#include "run_store.hpp"

namespace vmlat::report {

struct HistorySeries {
  std::string cell, stat;
  std::vector<std::size_t> runs;  // indices into History::run_ids of the runs that measured it
  std::vector<double> values_ns;
};

struct HistoryChange {
  std::string cell, stat;
  std::string host;  // where the cell ran in the first run after the change (result.json cell.host)
  std::string run_id, previous_run_id;  // the first run after the change, the last before it
  double before_ns = 0, after_ns = 0, p = 1;
  std::vector<FactChange> facts_changed;  // between the cell's results in those two runs
};

struct History {
  std::string dir, plan;
  double confidence = 0.99;
  std::vector<std::string> run_ids;  // oldest first
  std::vector<std::string> run_started;  // run.json "started" of each (ISO 8601 UTC, "" if absent)
  std::vector<HistorySeries> series;
  std::vector<HistoryChange> changes;
};

// The statistics of every cell's series: p50, p99, p99.9, max.
const std::vector<StatName>& history_statistics();

// `runs`: a plan's runs, oldest first.
History build_history(const std::vector<StoredRun>& runs, const std::string& dir, double confidence = 0.99);

std::string history_text(const History& h);
std::string history_markdown(const History& h);
json history_json(const History& h);
// A self-contained page (no script, nothing fetched): the change points with
// the facts that changed, the runs, and per cell a plot of its statistics
// across the runs with each change point marked.
std::string history_html(const History& h);

}  // namespace vmlat::report
