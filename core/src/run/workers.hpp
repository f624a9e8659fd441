// Stage 4 of a run: the cells measured. A resumed run keeps what it measured;
// the other cells queue on their host in plan order. One worker per host:
// hosts in parallel, one cell at a time on each, hosts that are one machine
// in turns (machines.hpp). A remote host is connected, provisioned and given
// the plan first; its cells run there as `vmlat run-cell` over ssh
// (remote.hpp) and come back as result.json, read with the one reader
// (cell/outcome.hpp) and judged with this controller's gates. This
// machine's cells are measured in this process (cell/measure.hpp). A cell
// whose gate failed is retested (run/retest.hpp).
#pragma once

#include <iosfwd>
#include <vector>

#include "cell/outcome.hpp"
#include "cell_support.hpp"
#include "run/progress.hpp"
#include "run/run_hosts.hpp"
#include "run/run_record.hpp"
#include "run/selection.hpp"

namespace vmlat {

class Executor;
class PluginRegistry;

struct RunParts {
  const Plan& plan;
  PluginRegistry& registry;
  const Selection& selection;
  RunHosts& hosts;
  RunRecord& record;
  Progress& progress;
  FileLogger& run_log;
  Executor& local_host;  // this machine, in the run's work directory
  std::ostream& err;
};

// Every selected cell's outcome, in the order of selection.cells; run.json
// and the exporter hook (RunOptions::on_cell_done) follow each cell.
// Returns exit_code::pass, or infra when the run could not start its remote
// part (then nothing was measured and the outcomes are empty).
int measure_cells(RunParts& run, std::vector<CellOutcome>& outcomes);

}  // namespace vmlat
