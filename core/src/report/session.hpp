// `vmlat report SESSION_DIR`: a monitoring session (docs/session-format.md)
// rendered like a run: the worst case per window over time (the OSADL
// "maximum of each interval" plot) with its gaps, the cumulative histogram,
// the worst wake-ups with their wall-clock time.
#pragma once

#include <filesystem>
#include <iosfwd>

#include "commands.hpp"

namespace vmlat::report {

// A directory holding a monitor's session.json.
bool is_session_dir(const std::filesystem::path& dir);
// As report_command, for a session directory.
int session_report_command(const ReportCommand& command, std::ostream& out, std::ostream& err);

}  // namespace vmlat::report
