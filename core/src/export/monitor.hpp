// `vmlat monitor`: one cell of a plan measured continuously in rolling
// windows, served as live Prometheus metrics (prometheus-cpp Exposer).
#pragma once

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "../plan.hpp"

namespace vmlat {
class PluginRegistry;
}

namespace vmlat::exporter {

struct MonitorOptions {
  std::string listen = "127.0.0.1:9464";             // host:port of /metrics
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::string cell_id;                               // empty: the plan's first cell
  std::optional<std::chrono::nanoseconds> stop_after;  // --for: stop by itself (tests)
  std::optional<std::filesystem::path> lock_dir;     // the host lock (as `vmlat run`)
  bool no_wait = false;
};

// Prepares and boots the cell's backend, starts its workload once, then runs
// the probe for one window after another until SIGINT/SIGTERM (or
// stop_after), merging every window into a cumulative histogram. Stops the
// workload and tears the backend down on every path. Returns 0 after a clean
// stop, 2 for a bad cell id or address, 3 if the cell could not be measured.
int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err);

}  // namespace vmlat::exporter
