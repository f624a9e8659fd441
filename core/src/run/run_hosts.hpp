// Stage 2 of a run: the hosts (the plan's [hosts], or the user's inventory),
// what they are, which cells each takes, and which are one machine — all
// decided before anything runs.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "hosts.hpp"
#include "machines.hpp"
#include "run/selection.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

class PluginRegistry;

struct RunHosts {
  std::vector<HostSpec> specs;       // as declared (for the run's inventory)
  bool placed = false;               // [hosts] or --inventory: placement rules apply
  std::vector<HostState> hosts;      // discovered (the implicit local host without facts yet)
  std::vector<MachineGroup> machines;
  std::filesystem::path discovery;   // scratch of the discovery (ssh sockets), removed with this
  json share;                        // --host: run.json's "share" (run/host_share.hpp); null otherwise
  RunHosts() = default;
  RunHosts(const RunHosts&) = delete;
  RunHosts& operator=(const RunHosts&) = delete;
  ~RunHosts();

  HostState& of(const std::string& name);
  bool any_local(const std::vector<Cell>& cells);
  bool any_remote(const std::vector<Cell>& cells);
};

// Discovers the hosts and places `selection.cells` on them (Cell::spec.host_name).
// With --host/--this-host, only those hosts and their static share of the
// cells, which may leave none (exit_code::pass, `cells` empty).
// exit_code::pass, or the exit code after saying why on `err`: a bad
// inventory (2), an interrupt (130), cells no host can take or hosts that
// are one machine in a way vmlat cannot serialise (3).
int place_on_hosts(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::vector<Cell>& cells,
                   std::ostream& err, RunHosts& out);

}  // namespace vmlat
