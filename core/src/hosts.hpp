// The hosts of a run (docs/plan-format.md, [hosts] and "Placement"): where
// they come from (the plan, or the user's Ansible inventory), what they are
// (facts discovered before anything runs), which cells each takes, and the
// Ansible inventory vmlat writes for them.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plan.hpp"
#include "ssh.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

class PluginRegistry;

// Settings a remote host's vmlat lives by: the vmlat_common role's
// variables, with the role's defaults.
struct RemoteLayout {
  std::string prefix = "/opt/vmlat";        // vmlat_common_prefix: <prefix>/bin/vmlat
  std::string work_dir = "/var/lib/vmlat";  // vmlat_common_work_dir: plans and cell results
  std::string lock_dir = "/run/vmlat";      // vmlat_common_lock_dir: the host lock
  std::string vmlat() const { return prefix + "/bin/vmlat"; }
};
RemoteLayout remote_layout(const HostSpec& host);

// How ssh reaches a remote host, its master's socket at `control_path`.
SshTarget ssh_target_of(const HostSpec& host, std::filesystem::path control_path);

// Hosts of the user's inventory (ansible-inventory -i FILE --list): its
// hosts become vmlat hosts, its groups their tags; ansible_host/port/user/
// ssh_private_key_file give the connection, ansible_connection=local this
// machine. Only those and vmlat_common_* variables are kept: an inventory
// may hold secrets, and nothing of it is written anywhere. Throws PlanError.
std::vector<HostSpec> hosts_from_inventory(const std::filesystem::path& inventory, const std::filesystem::path& scratch);

// The Ansible inventory (JSON, which Ansible's YAML inventory reads) for
// the plan's hosts: connection settings, the plan's host vars, a group per tag.
json inventory_for(const std::vector<HostSpec>& hosts);

// What a host is, found before anything runs.
struct HostState {
  HostSpec spec;
  bool reachable = true;
  std::string unreachable;  // ssh's words when it is not
  json facts = json::object();
  // The master connection discovery made (remote hosts that answered, in a
  // lab of at most max_parallel_hosts remote hosts): started by the thread
  // that called discover_hosts, released when the host's worker is done.
  std::shared_ptr<SshMaster> master;
  std::string summary() const;  // "6.1.0-57-rt-amd64 PREEMPT_RT, 8 CPUs, kvm"
};

// Connects to every remote host (at most `max_parallel` at a time) and reads
// its facts (collect_system_facts plus "hypervisor"); this machine's facts
// directly. Control sockets go under scratch/ssh. Each remote host that
// answered keeps its master (HostState::master) when there are at most
// `max_parallel` of them, none otherwise. Call it from a thread that
// outlives the returned masters.
std::vector<HostState> discover_hosts(const std::vector<HostSpec>& hosts, const std::filesystem::path& scratch,
                                      std::size_t max_parallel);

// Which host takes each cell: tags the backend needs (its plugin's
// Descriptor::host_tags, from the class's kHostTags), host_kernel against
// the facts (PREEMPT_RT or not),
// the host axis. Fills Cell::spec.host_name. Cells no host can take make
// `problems` (one line each, naming the cell and why); with the implicit
// local host (no [hosts]) every cell goes to it, as before placement.
struct Placement {
  std::vector<std::string> problems;
};
// `placed`: false for the implicit local host of a plan without [hosts].
// `use_facts` false: host_kernel is not judged (the static share of a
// fan-out, run/host_share.hpp, which has no facts of the other hosts).
Placement place_cells(const Plan& plan, std::vector<Cell>& cells, const std::vector<HostState>& hosts, bool placed,
                      PluginRegistry& registry, bool use_facts = true);

}  // namespace vmlat
