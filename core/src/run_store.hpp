// Reading stored runs (docs/results-format.md): run.json and the result.json
// of every cell. One reader for everything that consumes a run directory:
// `vmlat push`/`metrics`, reports, `vmlat compare` and regression gates.
#pragma once

#include <string>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat {

// A stored run: run.json and the result.json of every cell that has one, in
// run order.
struct StoredRun {
  std::string dir;  // the run directory actually read (after following "latest")
  json run;
  std::vector<json> cells;
};

// How much of each result.json a reader builds. The whole document by
// default. A summary is what `vmlat compare` and `vmlat history` read: every
// member but the per-CPU series, spikes, traces, artifacts, warnings and
// plugins (left out, checked for syntax only), and of each series' merged
// document its statistics, with its histogram only when they lack one of
// `stats_keys` (statistics are written before the histogram; a statistic
// missing there is computed from the histogram, which is then kept).
struct CellContent {
  bool summary = false;
  std::vector<std::string> stats_keys;  // "p50_ns", "max_ns", ...
  bool histograms = false;              // a summary that keeps histograms
  bool facts = true;                    // false: a summary without host_facts and facts
};

// `dir` is a run directory, or a results root holding "latest" (a link to the
// newest run). Throws std::runtime_error saying which file is missing or
// broken. Cells are read from cells/<id> for plain ids only (letters,
// digits, '.', '_', '-', not starting with '.'): a run.json never leads the
// reader outside the run. A run whose vmlat died reads as "abandoned".
StoredRun load_run_dir(const std::string& dir, const CellContent& content = {});

// load_run_dir in two steps, so that a reader of many runs chooses them by
// their run.json first and then reads all their cells with one parser per
// core across the runs: run.json alone (cells empty; throws as
// load_run_dir), then the cells of each run, returning per run its first
// error ("" when its cells are complete).
StoredRun load_run_head(const std::string& dir);
std::vector<std::string> load_run_cells(const std::vector<StoredRun*>& runs, const CellContent& content = {});

}  // namespace vmlat
