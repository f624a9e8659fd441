// Stage 5 of a run: what it comes to — the tallies, the exit code, the
// summary table and its last lines.
#pragma once

#include <iosfwd>
#include <vector>

#include "cell/outcome.hpp"
#include "plan.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct Tally {
  int cells = 0, measured = 0, infra = 0, interrupted = 0, skipped = 0;
  int gates_passed = 0, gates_failed = 0, gates_flaky = 0;
  int gate_errors = 0;
  // [[expect]] claims: judged, and violated ones with gate = true (exit 1).
  int expects_held = 0, expects_violated = 0, expects_inconclusive = 0, expects_failed = 0;
  bool has_expects = false;  // gates of measured cells that could not be evaluated (a baseline unreadable)
  // 130 interrupted; 1 a gate failed or a gating claim is violated (a flaky one with [plan] flaky = "fail");
  // 3 a cell not measured or a gate not evaluated; else 0.
  int exit_code(const Plan& plan, bool interrupted) const;
  json summary() const;  // run.json's "summary"
};
Tally tally(const std::vector<CellOutcome>& outcomes);

struct ExpectResult;
// The plan's [[expect]] claims judged over the run's result documents; counted into `t`.
std::vector<ExpectResult> judge_run_expects(const Plan& plan, const std::vector<json>& cell_results, Tally& t);
// A line per claim after the summary table (nothing without claims).
void print_expects(std::ostream& out, const std::vector<ExpectResult>& expects);

// The table (a row per cell and gate) and the totals, as `vmlat run` prints them.
void print_summary(std::ostream& out, const Plan& plan, const std::vector<Cell>& cells,
                   const std::vector<CellOutcome>& outcomes, const Tally& tally, bool with_hosts);

// Left-aligned in `width`.
std::string pad(std::string s, std::size_t width);
// On one line, at most 300 characters: for tables and run.json.
std::string one_line(std::string s);

}  // namespace vmlat
