// Provisioning lab hosts (docs/ARCHITECTURE.md, "Hosts"; ansible/README.md):
// every host of a run that needs it gets ansible/provision.yml from ONE
// ansible-playbook over the run's inventory, Ansible's forks doing the hosts
// in parallel, before the first cell — not a process per host. Ansible's
// answer is read back host by host (ansible/callback_plugins/vmlat_hosts.py),
// so a host that fails costs only its own cells. `vmlat run` and `vmlat
// provision` both come here.
//
// Bounded: at most max_parallel_hosts hosts per ansible-playbook (a wave);
// hosts that are one machine (machines.hpp) are never in one wave, so they
// take turns as they do for cells.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hosts.hpp"
#include "machines.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct ProvisionSetup {
  std::filesystem::path inventory;    // the run's inventory, or the user's
  std::filesystem::path ansible_dir;  // provision.yml, ansible.cfg, callback_plugins/
  std::filesystem::path bundle;       // the vmlat bundle the hosts get
  std::filesystem::path scratch;      // each wave's inventory overlay and Ansible's report
  std::filesystem::path socket_dir;   // control sockets of ssh masters opened for a wave
  std::size_t max_parallel = 16;      // [plan] max_parallel_hosts: hosts per wave, Ansible's forks
};

// The ansible/ directory and the bundle (`bundle`, or one made from the
// build tree this vmlat runs from into `scratch`; its log at `bundle_log`).
// Throws InfraError saying why provisioning cannot happen.
ProvisionSetup prepare_provisioning(const std::optional<std::filesystem::path>& bundle, const std::filesystem::path& scratch,
                                    const std::filesystem::path& bundle_log);

// Hosts in waves, in their order: each wave has at most `max_parallel`
// hosts and no two hosts of one machine.
std::vector<std::vector<std::string>> provisioning_waves(const std::vector<std::string>& hosts,
                                                         const std::vector<MachineGroup>& machines, std::size_t max_parallel);

// The second inventory of a wave: a group `group` of the wave's hosts, each
// with the control socket of its ssh master (ansible_control_path) when it
// has one, so that Ansible's ssh rides on it. JSON: names and paths are data.
json provisioning_overlay(const std::vector<std::pair<std::string, std::filesystem::path>>& hosts, const std::string& group);

// ansible-playbook -i INVENTORY -i OVERLAY provision.yml --limit GROUP
// --forks min(hosts, max_parallel) -e {"vmlat_common_bundle": BUNDLE}.
// The group, not the host names, limits the play: a host named like a group
// of the inventory (or "all") selects only itself.
std::vector<std::string> provisioning_argv(const ProvisionSetup& setup, const std::filesystem::path& overlay,
                                           const std::string& group, std::size_t hosts);

// What Ansible said of one host (the callback's report).
struct HostProvisioning {
  json counts = json::object();  // ok, changed, unreachable, failures, skipped, rescued, ignored
  json tasks = json::array();    // {task, status, msg}
  bool ok() const;
  std::string reason() const;    // one line: the failed task and its message
  std::string log(const std::string& host) const;  // the host's provision.log: its tasks, then its recap line
};
// Throws InfraError when the report is not one.
std::map<std::string, HostProvisioning> read_provisioning_report(const std::string& text);

struct ProvisionLogs {
  std::function<std::filesystem::path(const std::string& host)> host;  // that host's log
  std::function<std::filesystem::path(std::size_t wave)> output;       // a wave's whole Ansible output (0-based)
  std::function<std::string(const std::filesystem::path&)> shown;      // a path as messages name it
};
struct ProvisionEvents {
  // Before each wave: its hosts and the command line (for the run log).
  std::function<void(const std::vector<std::string>& hosts, const std::vector<std::string>& argv)> wave;
  // After each host: empty, or why it failed (one line).
  std::function<void(const std::string& host, const std::string& failure)> host;
};

// Provisions `hosts` (remote hosts that answered discovery) in waves.
// A host without a live master gets one for its wave, opened here: call it
// from a thread that outlives the wave (the run's). Returns host -> why it
// failed, for the hosts that did. Throws Cancelled when interrupted (the
// playbook stopped).
std::map<std::string, std::string> provision_hosts_in_waves(const ProvisionSetup& setup, const std::vector<HostState*>& hosts,
                                                            const std::vector<MachineGroup>& machines, const ProvisionLogs& logs,
                                                            const ProvisionEvents& events);

// The directory of ansible/ (provision.yml): the source tree's when this
// vmlat runs from its build tree, else the installed share/vmlat/ansible.
std::optional<std::filesystem::path> find_ansible_dir();
// Makes the bundle the vmlat_common role installs (ansible/make-bundle over
// the build tree this vmlat runs from) at `out`. Throws InfraError.
void make_bundle(const std::filesystem::path& ansible_dir, const std::filesystem::path& out, const std::filesystem::path& log);

}  // namespace vmlat
