// One measurement of a cell in this process — `vmlat run`, `vmlat run-cell`
// and each retest: the cell's life (RunningCell) around the probe's run(),
// then what makes its data a measurement (plausibility, the spike list, the
// series its gates read) and the outcome with its result document.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "cell/outcome.hpp"
#include "cell_support.hpp"
#include "plan.hpp"

namespace vmlat {

class Executor;
class PluginRegistry;

struct MeasureCell {
  const Plan& plan;
  PluginRegistry& registry;
  const Cell& cell;
  std::string run_id;
  std::filesystem::path cell_dir;  // result.json's directory: artifacts go here
  std::filesystem::path work_dir;  // scratch; removed when the cell was measured
  FileLogger& log;
  Executor& host;
  const json& host_facts;
  std::function<void(const std::string& phase)> on_phase;
};

// The outcome, gates evaluated; result.json is not written (run/store.hpp).
CellOutcome measure_cell(const MeasureCell& request);

}  // namespace vmlat
