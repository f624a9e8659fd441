// The `vmlat report` and `vmlat compare` commands (the CLI parses the
// options, these do the work and return the exit code).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "app.hpp"
#include "history.hpp"
#include "run_store.hpp"

namespace vmlat::report {

// ReportCommand and CompareCommand: app.hpp.
// 0 written; 2 usage or an unreadable run/baseline; 3 the output could not be written.
int report_command(const ReportCommand& command, std::ostream& out, std::ostream& err);

// 0 no regression; 1 a regression beyond tolerance; 3 a cell of BASE not
// measured in NEW; 2 usage or an unreadable run directory.
int compare_command(const CompareCommand& command, std::ostream& out, std::ostream& err);

// `vmlat history` (app.cpp puts these together with the exporter, for
// --format prometheus and --push): the history asked for, or nullopt after
// saying why on `err` (exit 2); `h` written as text, markdown, json or html
// (0, or 3 if the output could not be written).
std::optional<History> read_history(const HistoryCommand& command, std::ostream& err);
int write_history(const HistoryCommand& command, const History& h, std::ostream& out, std::ostream& err);
// Every run directory of `dirs` read whole, in order (reports point into
// them: never resized after), or nullopt after saying which could not be
// read on `err` ("vmlat: WHAT: ..."): `vmlat gate` and `vmlat export`.
std::optional<std::vector<StoredRun>> load_runs(const std::vector<std::string>& dirs, const char* what, std::ostream& err);
// `content` to `path` ("" or "-": `out`), atomically; 0, or 3 after saying why.
int write_output(const std::string& content, const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace vmlat::report
