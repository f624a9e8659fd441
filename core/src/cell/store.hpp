// Writing a cell's result.json (atomically: temporary name, fsync, rename).
#pragma once

#include <filesystem>
#include <iosfwd>

#include "cell/outcome.hpp"
#include "cell_support.hpp"

namespace vmlat {

// Writes result_json(outcome) into cell_dir. A cell whose result cannot be
// written is not measured, whatever it measured (docs/results-format.md):
// it becomes an infrastructure error of phase "store" (its gates evaluated
// again) and `result_missing` is set; said on `err` and in the cell's log.
void store_result(const Plan& plan, const Cell& cell, const std::filesystem::path& cell_dir, CellOutcome& outcome,
                  FileLogger& cell_log, std::ostream& err);

}  // namespace vmlat
