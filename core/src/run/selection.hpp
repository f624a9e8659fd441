// Stage 1 of a run: which cells, with which options. A resumed run takes its
// own --only, --duration, --inventory and --host/--this-host from its run.json (the plan must be
// byte-identical).
#pragma once

#include <iosfwd>
#include <optional>
#include <vector>

#include "app.hpp"
#include "plan.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct Selection {
  RunOptions options;             // as given, or as the resumed run had them
  std::optional<json> previous;   // run.json of the run being resumed
  std::vector<Cell> cells;        // selected, indexed 1..N in plan order
};

// exit_code::pass and `out` filled, or the exit code after saying why on `err`.
int select_cells(const Plan& plan, const RunOptions& options, std::ostream& err, Selection& out);

// run.json of `path` (a run directory's), or nullopt with *why.
std::optional<json> read_json_file(const std::filesystem::path& path, std::string* why);

}  // namespace vmlat
