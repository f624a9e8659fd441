#include "run/run_hosts.hpp"

#include <unistd.h>

#include <algorithm>
#include <ostream>

#include "run/host_share.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/interrupt.hpp"

namespace vmlat {

RunHosts::~RunHosts() {
  // The ssh masters live in `hosts`; their sockets in `discovery`.
  hosts.clear();
  std::error_code ec;
  if (!discovery.empty()) std::filesystem::remove_all(discovery, ec);
}

HostState& RunHosts::of(const std::string& name) {
  for (auto& h : hosts)
    if (h.spec.name == name) return h;
  return hosts.front();
}

bool RunHosts::any_local(const std::vector<Cell>& cells) {
  return std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return of(c.spec.host_name).spec.local(); });
}

bool RunHosts::any_remote(const std::vector<Cell>& cells) {
  return std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return !of(c.spec.host_name).spec.local(); });
}

int place_on_hosts(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::vector<Cell>& cells,
                   std::ostream& err, RunHosts& h) {
  h.specs = plan.hosts;
  h.placed = plan.hosts_declared;
  h.discovery = std::filesystem::temp_directory_path() / ("vmlat-hosts-" + std::to_string(::getpid()));
  if (options.inventory) {
    try {
      h.specs = hosts_from_inventory(*options.inventory, h.discovery / "inventory");
      h.placed = true;
    } catch (const std::exception& e) {
      err << "vmlat: --inventory: " << e.what() << "\n";
      return exit_code::usage;
    }
  }
  // One job of a fan-out: its hosts and their static share only.
  if (!options.host_share.empty() || !options.this_host.empty()) {
    if (!h.placed) {
      err << "vmlat: --host and --this-host pick hosts of [hosts] or of --inventory; this plan has neither (every cell runs here)\n";
      return exit_code::usage;
    }
    if (int code = take_host_share(plan, registry, options, h.specs, cells, err, h.share); code != exit_code::pass) return code;
    if (cells.empty()) return exit_code::pass;
  }
  if (h.placed) {
    if (options.progress) err << "vmlat: looking at " << h.specs.size() << " host(s)...\n" << std::flush;
    try {
      h.hosts = discover_hosts(h.specs, h.discovery, plan.max_parallel_hosts);
    } catch (const Cancelled&) {
      err << "vmlat: interrupted while looking at the hosts\n";
      return exit_code::interrupted;
    }
  } else {
    HostState local;
    local.spec = h.specs.front();
    h.hosts.push_back(local);  // its facts come with the run's own work dir
  }
  Placement placement;
  if (h.share.is_null()) placement = place_cells(plan, cells, h.hosts, h.placed, registry);
  else placement.problems = share_kernel_problems(cells, h.hosts);
  if (!placement.problems.empty()) {
    err << "vmlat: refused before anything ran: " << placement.problems.size() << " cell(s) cannot be placed on any host\n";
    for (const auto& p : placement.problems) err << "  " << p << "\n";
    for (const auto& host : h.hosts) {
      std::string tags;
      for (const auto& tag : host.spec.tags) tags += (tags.empty() ? "" : ", ") + tag;
      err << "  host " << host.spec.name << ": tags [" << tags << "], " << host.summary() << "\n";
    }
    return exit_code::infra;
  }
  // Plan hosts that are one machine take turns (machines.hpp).
  h.machines = same_machines(h.hosts);
  if (auto problems = same_machine_problems(h.machines, h.hosts, cells); !problems.empty()) {
    err << "vmlat: refused before anything ran:\n";
    for (const auto& p : problems) err << "  " << p << "\n";
    return exit_code::infra;
  }
  for (const auto& g : h.machines) err << "vmlat: " << describe(g) << ": their cells run one at a time\n";
  return exit_code::pass;
}

}  // namespace vmlat
