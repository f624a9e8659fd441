// The `vmlat report` and `vmlat compare` commands (the CLI parses the
// options, these do the work and return the exit code).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace vmlat::report {

struct ReportCommand {
  std::string run_dir;         // a run directory, or a results root (its "latest")
  std::string format = "html"; // html, markdown, json
  std::string output;          // "": RUN_DIR/report.html for html, stdout otherwise; "-": stdout
  std::string baseline;        // optional run directory to compare with
};
// 0 written; 2 usage or an unreadable run/baseline; 3 the output could not be written.
int report_command(const ReportCommand& command, std::ostream& out, std::ostream& err);

struct CompareCommand {
  std::string base, now;
  std::vector<std::string> tolerances;  // "10%", "20us", "max=20us", "p99=5%"
  std::string format = "text";          // text, markdown, json
  std::string output;                   // "" or "-": stdout
};
// 0 no regression; 1 a regression beyond tolerance; 3 a cell of BASE not
// measured in NEW; 2 usage or an unreadable run directory.
int compare_command(const CompareCommand& command, std::ostream& out, std::ostream& err);

}  // namespace vmlat::report
