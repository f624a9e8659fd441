// `vmlat gate RUN...`: the last job of a fan-out (docs/fan-out.md). The runs
// of one plan's CI jobs (`vmlat run PLAN --host NAME`, one per host) merged
// as `vmlat report` merges them and judged as one run of the whole plan:
// every cell of the plan must have been measured in some run (a cell in no
// run is never a pass), no gate may fail.
#pragma once

#include <iosfwd>

#include "app.hpp"

namespace vmlat::report {

// 0 every cell of the plan measured in some run and every gate passed; 1 a
// gate failed (or a gating claim, or a run's own exit 1); 3 a cell of the
// plan measured in no run, or a gate not evaluated; 2 bad usage, an
// unreadable run, or runs that are not of one plan and selection. One line
// per failing or missing cell on `out`, then the verdict.
int gate_command(const GateCommand& command, std::ostream& out, std::ostream& err);

}  // namespace vmlat::report
