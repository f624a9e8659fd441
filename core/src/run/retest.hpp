// [plan] retest / [[gate]] retest (docs/bisect.md): a cell whose gate failed
// is measured again, on the same host, up to N times; its first measurement
// stays the cell's result, each retest is kept in attempts/<id>.retest<k>/.
// Per gate that failed: passed on a retest -> flaky; failed on every retest
// -> fail (reproduced); a retest that could not be measured -> error
// (neither confirmed nor refuted: a broken lab never decides a verdict).
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>

#include "cell/outcome.hpp"

namespace vmlat {

// `measure(dir)` measures the cell again into `dir` (as the cell itself was
// measured: locally or on its host) and returns that attempt's outcome.
// Rewrites the cell's result.json when a verdict changed.
void retest_failures(const Plan& plan, const Cell& cell, CellOutcome& outcome, const std::filesystem::path& cell_dir,
                     const std::filesystem::path& run_dir,
                     const std::function<CellOutcome(const std::filesystem::path&)>& measure, std::ostream& err);

}  // namespace vmlat
