// Reading stored runs (docs/results-format.md): run.json and the result.json
// of every cell. One reader for everything that consumes a run directory:
// `vmlat push`/`metrics`, reports, `vmlat compare` and regression gates.
#pragma once

#include <string>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat {

// A stored run: run.json and the result.json of every cell that has one, in
// run order.
struct StoredRun {
  std::string dir;  // the run directory actually read (after following "latest")
  json run;
  std::vector<json> cells;
};

// `dir` is a run directory, or a results root holding "latest" (a link to the
// newest run). Throws std::runtime_error saying which file is missing or
// broken. Cells are read from cells/<id> for plain ids only (letters,
// digits, '.', '_', '-', not starting with '.'): a run.json never leads the
// reader outside the run. A run whose vmlat died reads as "abandoned".
StoredRun load_run_dir(const std::string& dir);

}  // namespace vmlat
