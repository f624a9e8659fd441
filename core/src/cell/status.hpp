// What became of a cell: the status result.json and run.json record
// (docs/results-format.md). Only `measured` cells have data a gate may judge;
// a cell that was not measured never passes.
#pragma once

#include <optional>
#include <string_view>

namespace vmlat {

enum class CellStatus {
  pending,      // in run.json before its turn
  running,      // in run.json while it runs
  measured,     // the probe's data fits the cell
  infra_error,  // could not be measured: the lab, a plugin, the core's own write
  interrupted,  // vmlat was interrupted (SIGINT/SIGTERM) during it
  skipped,      // not runnable here (the host kernel it needs)
  not_run,      // the run was interrupted before its turn
};

// "measured", "infra-error", "not-run", ...: the words of the result files.
const char* status_name(CellStatus status);
std::optional<CellStatus> parse_status(std::string_view name);

}  // namespace vmlat
