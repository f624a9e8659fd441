// The `vmlat report` and `vmlat compare` commands (the CLI parses the
// options, these do the work and return the exit code).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "app.hpp"

namespace vmlat::report {

// ReportCommand and CompareCommand: app.hpp.
// 0 written; 2 usage or an unreadable run/baseline; 3 the output could not be written.
int report_command(const ReportCommand& command, std::ostream& out, std::ostream& err);

// 0 no regression; 1 a regression beyond tolerance; 3 a cell of BASE not
// measured in NEW; 2 usage or an unreadable run directory.
int compare_command(const CompareCommand& command, std::ostream& out, std::ostream& err);

// 0 written; 2 usage, or a directory without a complete run of the plan;
// 3 the output could not be written.
int history_command(const HistoryCommand& command, std::ostream& out, std::ostream& err);

}  // namespace vmlat::report
