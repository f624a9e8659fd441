// Running a plan (`vmlat run`), one cell of it for a controller (`vmlat
// run-cell`), and its hosts (`vmlat hosts`, `vmlat provision`). The stages
// of a run are in this directory, one file each:
//
//   selection.cpp   which cells, with which options (resume)
//   run_hosts.cpp   the hosts, what they are, which cells each takes
//   run_record.cpp  locks, the run directory, run.json
//   workers.cpp     the cells measured: one worker per host (retest.cpp)
//   summary.cpp     tallies, the exit code, the summary table
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>

#include "app.hpp"
#include "plan.hpp"

namespace vmlat {

class PluginRegistry;

// Runs the plan; returns the exit code. Writes the summary to `out` and
// progress/errors to `err`.
int run_plan(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::ostream& out, std::ostream& err);

// `vmlat run-cell` (app.hpp, CellRunOptions).
int run_single_cell(const Plan& plan, PluginRegistry& registry, const CellRunOptions& options, std::ostream& out,
                    std::ostream& err);

// `vmlat hosts PLAN`: every host with its address, reachability, tags and
// facts; `vmlat provision PLAN`: provision.yml on each remote host, nothing
// measured. Both accept the user's inventory instead of [hosts].
int list_hosts(const Plan& plan, const std::optional<std::filesystem::path>& inventory, bool as_json, std::ostream& out,
               std::ostream& err);
int provision_hosts(const Plan& plan, const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace vmlat
