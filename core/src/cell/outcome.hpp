// A cell's outcome: what became of it (status, error, gates) and what it
// measured, and the one place result.json is rendered from it and read back
// into it (docs/results-format.md). The runner, `vmlat run-cell`, retests,
// resume and remote cells all go through these.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cell/status.hpp"
#include "gates/gate_result.hpp"
#include "plan.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct CellOutcome {
  CellStatus status = CellStatus::pending;
  std::string error;
  std::string error_phase;
  std::optional<Histogram> merged;                 // the default series over its CPUs
  std::map<std::string, Histogram> series_merged;  // every series by name, the default included
  std::vector<GateResult> gates;                   // decided by the core (gates/evaluate.hpp, retests)
  json retests;                                    // null, or the retests' summary (run/retest.hpp)
  // Everything else result.json says (the cell, plugins, facts, timings,
  // histograms, spikes, ...) in its key order, with the keys above present
  // as placeholders so that rendering keeps their place.
  json document = json::object();
  bool result_missing = false;                     // result.json could not be written
  bool kept = false;  // a resumed run's cell kept as it was: its stored result.json is not rendered again
  bool measured() const { return status == CellStatus::measured; }
  bool has_result() const { return !document.empty(); }  // not-run cells have none
};

// {"axis": "value", ...} in plan order: a cell's axes in result.json and run.json.
json axes_json(const CellSpec& spec);

// result.json: the document with the core's verdict (status, error,
// error_phase, gates; retests when there were any). The one renderer.
json result_json(const CellOutcome& outcome);

// The document of a cell that did not reach its plugins' measurement (not
// runnable here, a core failure around it, a host that failed): identity and
// host facts only.
json unmeasured_document(const std::string& run_id, const Cell& cell, const json& host_facts);
// Such an outcome with its gates evaluated (never a pass).
CellOutcome unmeasured_outcome(const Plan& plan, const Cell& cell, const std::string& run_id, CellStatus status,
                               const std::string& error, const std::string& phase, const json& host_facts);

// What every reader of a result.json needs first.
struct ResultHead {
  std::string cell_id;                 // "" if the document names no cell
  std::optional<CellStatus> status;    // nullopt: missing or not a status word
  std::string error, error_phase;      // "" when null
};
ResultHead read_result_head(const json& result);

// The one reader of a result.json (resume, remote cells): status, errors,
// the histograms of every series; the document kept as it is. Gates are not
// read: the caller evaluates them again with its plan. nullopt with *why
// when a histogram is unreadable.
std::optional<CellOutcome> outcome_from_result(const json& result, std::string* why);

// The cell's entry in run.json's cells[]: status, error, max, gate verdicts.
void record_in_run(json& entry, const CellOutcome& outcome);

}  // namespace vmlat
