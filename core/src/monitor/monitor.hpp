// `vmlat monitor`: one cell of a plan measured continuously, window after
// window, with no blind spot between windows (a streaming probe), kept on
// disk as a session directory (docs/session-format.md) and served as live
// Prometheus metrics (prometheus-cpp Exposer). Each segment of the session —
// the cell brought up, measured until it fails or is stopped, brought down —
// is one life of the cell's running-cell type (cell/running_cell.hpp).
#pragma once

#include <iosfwd>

#include "app.hpp"
#include "plan.hpp"

namespace vmlat {

class PluginRegistry;

// Prepares and boots the cell's backend, starts its workload, then streams
// the probe's windows into the session directory and /metrics until
// SIGINT/SIGTERM (or stop_after). A backend or probe that fails after the
// first window is torn down and brought up again after a back-off; the time
// not measured is recorded as a gap. Returns 0 after a clean stop, 2 for a
// bad cell id, address or window, 3 if the cell could not be measured at all
// or the last teardown failed, whatever a plugin threw.
int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err);

}  // namespace vmlat
