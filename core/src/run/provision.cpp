#include "run/provision.hpp"

#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "remote.hpp"
#include "run/summary.hpp"
#include "self_path.hpp"
#include "ssh.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/process.hpp"
#include "vmlat/text.hpp"

namespace vmlat {

namespace {

// The line of Ansible's output that says what went wrong, when Ansible
// itself failed (a bad playbook, an inventory it cannot read) and reported
// on no host.
std::string ansible_reason(const std::string& output) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    auto t = trim(line);
    if (t.rfind("fatal:", 0) == 0 || t.find("UNREACHABLE!") != std::string::npos || t.rfind("ERROR!", 0) == 0)
      return t.substr(0, 400);
  }
  return last_line_of(output);
}

// A group name no inventory of the user's has by chance: a host that is
// also a group's name, or "all", would widen a --limit of host names.
std::string wave_group_name() {
  std::random_device random;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string name = "vmlat_provision_";
  for (int i = 0; i < 16; ++i) name += "0123456789abcdef"[hex(random)];
  return name;
}

long long count(const json& counts, const char* key) {
  return counts.contains(key) && counts[key].is_number_integer() ? counts[key].get<long long>() : 0;
}

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : ", ") + w;
  return s;
}

}  // namespace

ProvisionSetup prepare_provisioning(const std::optional<std::filesystem::path>& bundle, const std::filesystem::path& scratch,
                                    const std::filesystem::path& bundle_log) {
  ProvisionSetup setup;
  auto dir = find_ansible_dir();
  if (!dir) throw InfraError("cannot find vmlat's ansible/ (provision.yml) beside this vmlat");
  setup.ansible_dir = *dir;
  if (bundle) {
    setup.bundle = std::filesystem::absolute(*bundle);
  } else {
    std::filesystem::create_directories(scratch);
    setup.bundle = scratch / "vmlat-bundle.tar.gz";
    make_bundle(setup.ansible_dir, setup.bundle, bundle_log);
  }
  return setup;
}

std::vector<std::vector<std::string>> provisioning_waves(const std::vector<std::string>& hosts,
                                                         const std::vector<MachineGroup>& machines, std::size_t max_parallel) {
  max_parallel = std::max<std::size_t>(max_parallel, 1);
  std::map<std::string, std::size_t> machine_of;
  for (std::size_t g = 0; g < machines.size(); ++g)
    for (const auto& h : machines[g].hosts) machine_of[h] = g;
  std::vector<std::vector<std::string>> waves;
  std::vector<std::set<std::size_t>> machines_in;  // per wave
  for (const auto& host : hosts) {
    auto m = machine_of.find(host);
    std::size_t w = 0;
    for (; w < waves.size(); ++w)
      if (waves[w].size() < max_parallel && (m == machine_of.end() || !machines_in[w].count(m->second))) break;
    if (w == waves.size()) {
      waves.emplace_back();
      machines_in.emplace_back();
    }
    waves[w].push_back(host);
    if (m != machine_of.end()) machines_in[w].insert(m->second);
  }
  return waves;
}

json provisioning_overlay(const std::vector<std::pair<std::string, std::filesystem::path>>& hosts, const std::string& group) {
  json members = json::object();
  for (const auto& [name, control_path] : hosts) {
    json vars = json::object();
    if (!control_path.empty()) vars["ansible_control_path"] = control_path.string();
    members[name] = vars;
  }
  return json{{"all", {{"children", {{group, {{"hosts", members}}}}}}}};
}

std::vector<std::string> provisioning_argv(const ProvisionSetup& setup, const std::filesystem::path& overlay,
                                           const std::string& group, std::size_t hosts) {
  const std::size_t forks = std::max<std::size_t>(1, std::min(hosts, setup.max_parallel));
  // Extra variables as JSON: a bundle path with a space or '=' stays one value.
  return {"ansible-playbook",
          "-i", setup.inventory.string(),
          "-i", overlay.string(),
          (setup.ansible_dir / "provision.yml").string(),
          "--limit", group,
          "--forks", std::to_string(forks),
          "-e", dump_json(json{{"vmlat_common_bundle", setup.bundle.string()}})};
}

bool HostProvisioning::ok() const { return count(counts, "failures") == 0 && count(counts, "unreachable") == 0; }

std::string HostProvisioning::reason() const {
  for (const auto& t : tasks) {
    const std::string status = t.value("status", "");
    const std::string msg = one_line(t.value("msg", ""));
    if (status == "failed") return "task '" + t.value("task", "?") + "' failed" + (msg.empty() ? "" : ": " + msg.substr(0, 400));
    if (status == "unreachable") return "unreachable" + (msg.empty() ? "" : ": " + msg.substr(0, 400));
  }
  return "Ansible counted " + std::to_string(count(counts, "failures")) + " failed task(s) and " +
         std::to_string(count(counts, "unreachable")) + " unreachable";
}

std::string HostProvisioning::log(const std::string& host) const {
  std::string text;
  for (const auto& t : tasks) {
    std::string status = t.value("status", "?");
    status.resize(std::max<std::size_t>(status.size(), 11), ' ');
    const std::string msg = t.value("msg", "");
    text += status + " " + t.value("task", "?") + (msg.empty() ? "" : ": " + msg) + "\n";
  }
  // The counts as Ansible's PLAY RECAP prints them.
  text += host + " : ok=" + std::to_string(count(counts, "ok")) + " changed=" + std::to_string(count(counts, "changed")) +
          " unreachable=" + std::to_string(count(counts, "unreachable")) + " failed=" + std::to_string(count(counts, "failures")) +
          " skipped=" + std::to_string(count(counts, "skipped")) + " rescued=" + std::to_string(count(counts, "rescued")) +
          " ignored=" + std::to_string(count(counts, "ignored")) + "\n";
  return text;
}

std::map<std::string, HostProvisioning> read_provisioning_report(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    throw InfraError(std::string("Ansible's report is not JSON: ") + e.what());
  }
  if (!doc.is_object() || doc.value("format", 0) != 1 || !doc.contains("hosts") || !doc["hosts"].is_object())
    throw InfraError("Ansible's report is not one of vmlat_hosts format 1");
  std::map<std::string, HostProvisioning> hosts;
  for (auto it = doc["hosts"].begin(); it != doc["hosts"].end(); ++it) {
    if (!it.value().is_object()) throw InfraError("Ansible's report on " + it.key() + " is not an object");
    HostProvisioning h;
    for (const char* key : {"ok", "changed", "unreachable", "failures", "skipped", "rescued", "ignored"})
      h.counts[key] = count(it.value(), key);
    if (it.value().contains("tasks") && it.value()["tasks"].is_array())
      for (const auto& t : it.value()["tasks"])
        if (t.is_object()) h.tasks.push_back(t);
    hosts[it.key()] = std::move(h);
  }
  return hosts;
}

std::map<std::string, std::string> provision_hosts_in_waves(const ProvisionSetup& setup, const std::vector<HostState*>& hosts,
                                                            const std::vector<MachineGroup>& machines, const ProvisionLogs& logs,
                                                            const ProvisionEvents& events) {
  std::map<std::string, std::string> failed;
  std::map<std::string, HostState*> by_name;
  std::vector<std::string> names;
  for (auto* h : hosts) {
    by_name[h->spec.name] = h;
    names.push_back(h->spec.name);
  }
  std::filesystem::create_directories(setup.scratch);
  const std::string group = wave_group_name();
  const auto waves = provisioning_waves(names, machines, setup.max_parallel);
  auto fail = [&](const std::string& name, const std::string& why) {
    failed[name] = why;
    if (events.host) events.host(name, why);
  };
  for (std::size_t k = 0; k < waves.size(); ++k) {
    check_interrupt();
    // Ansible's ssh rides on each host's master: the discovery's, or one
    // opened for this wave (closed after it: at most a wave's worth open).
    std::vector<std::shared_ptr<SshMaster>> opened;
    std::vector<std::pair<std::string, std::shared_ptr<SshMaster>>> members;
    for (const auto& name : waves[k]) {
      HostState& h = *by_name.at(name);
      std::shared_ptr<SshMaster> master = h.master;
      try {
        if (!master || !master->alive()) {
          master = std::make_shared<SshMaster>(ssh_target_of(h.spec, setup.socket_dir / name), setup.scratch / (name + ".ssh.log"));
          opened.push_back(master);
        }
        members.emplace_back(name, master);
      } catch (const std::exception& e) {
        fail(name, one_line(e.what()));
      }
    }
    std::vector<std::pair<std::string, std::filesystem::path>> reached;
    std::vector<std::string> reached_names;
    for (auto& [name, master] : members) {
      try {
        master->wait_ready(std::chrono::seconds(30));
        reached.emplace_back(name, master->target().control_path);
        reached_names.push_back(name);
      } catch (const Cancelled&) {
        throw;
      } catch (const std::exception& e) {
        fail(name, one_line(e.what()));
      }
    }
    if (reached.empty()) continue;
    const auto overlay = setup.scratch / ("wave-" + std::to_string(k + 1) + ".json");
    const auto report = setup.scratch / ("wave-" + std::to_string(k + 1) + ".report.json");
    write_file_atomic(overlay, dump_json(provisioning_overlay(reached, group), 2) + "\n");
    std::error_code ec;
    std::filesystem::remove(report, ec);
    const auto argv = provisioning_argv(setup, overlay, group, reached.size());
    if (events.wave) events.wave(reached_names, argv);
    // Ansible never keeps a connection of its own: nothing of it stays
    // connected after the playbook.
    const std::map<std::string, std::string> env{
        {"ANSIBLE_CONFIG", (setup.ansible_dir / "ansible.cfg").string()},
        {"ANSIBLE_SSH_ARGS", "-o ControlMaster=no -o ControlPersist=no"},
        {"ANSIBLE_NOCOLOR", "1"},
        {"ANSIBLE_RETRY_FILES_ENABLED", "0"},
        // An inventory Ansible cannot read fails the play instead of leaving
        // hosts without their connection settings.
        {"ANSIBLE_INVENTORY_UNPARSED_FAILED", "1"},
        {"ANSIBLE_CALLBACK_PLUGINS", (setup.ansible_dir / "callback_plugins").string()},
        {"ANSIBLE_CALLBACKS_ENABLED", "vmlat_hosts"},
        {"VMLAT_ANSIBLE_REPORT", report.string()}};
    const auto output = logs.output(k);
    std::filesystem::create_directories(output.parent_path(), ec);
    const auto status = run_to_end(ProcessSpec{argv, env, output, output, setup.ansible_dir}, std::chrono::hours(1));
    opened.clear();
    std::map<std::string, HostProvisioning> said;
    std::string unreported;  // why no host has a word from Ansible
    if (!std::filesystem::exists(report, ec)) unreported = "ansible-playbook " + status.describe() + ": " + ansible_reason(file_text(output));
    else try {
        said = read_provisioning_report(file_text(report));
      } catch (const std::exception& e) {
        unreported = e.what();
      }
    const std::string header = "ansible/provision.yml on " + joined(reached_names) + " (one ansible-playbook, " +
                               std::to_string(std::min(reached.size(), setup.max_parallel)) + " forks); Ansible's whole output: " +
                               logs.shown(output) + "\n";
    for (const auto& name : reached_names) {
      auto it = said.find(name);
      std::string failure;
      std::string log = header;
      if (it == said.end()) {
        failure = "provisioning " + name + " failed (" +
                  (unreported.empty() ? "ansible-playbook " + status.describe() + ": Ansible reported nothing on this host" : unreported) +
                  ")";
        log += failure + "\n";
      } else {
        if (!it->second.ok()) failure = "provisioning " + name + " failed: " + it->second.reason();
        log += it->second.log(name);
      }
      try {
        std::filesystem::create_directories(logs.host(name).parent_path());
        write_file_atomic(logs.host(name), log);
      } catch (const std::exception&) {
        // The verdict stands without its log.
      }
      if (failure.empty()) {
        if (events.host) events.host(name, "");
      } else {
        fail(name, failure);
      }
    }
  }
  return failed;
}

std::optional<std::filesystem::path> find_ansible_dir() {
#ifdef VMLAT_SOURCE_DIR_FOR_ANSIBLE
  // A vmlat in its build tree: the source tree's ansible/.
  if (!beside_executable(VMLAT_RELATIVE_PLUGIN_DIR)) {
    std::filesystem::path source = VMLAT_SOURCE_DIR_FOR_ANSIBLE;
    if (std::filesystem::exists(source / "ansible" / "provision.yml")) return source / "ansible";
  }
#endif
  if (auto installed = beside_executable("../share/vmlat/ansible"))
    if (std::filesystem::exists(*installed / "provision.yml")) return *installed;
  return std::nullopt;
}

void make_bundle(const std::filesystem::path& ansible_dir, const std::filesystem::path& out, const std::filesystem::path& log) {
  // The build tree this vmlat runs from (build/vmlat: its directory).
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  auto build_dir = exe.parent_path();
  if (ec || !std::filesystem::exists(build_dir / "CMakeCache.txt"))
    throw InfraError("provisioning needs a vmlat bundle: this vmlat is not in a build tree, so make one with "
                     "ansible/make-bundle BUILD_DIR FILE and pass it with --bundle FILE (or use --no-provision)");
  auto status = run_to_end(ProcessSpec{{(ansible_dir / "make-bundle").string(), build_dir.string(), out.string()}, {}, log, log, {}},
                           std::chrono::seconds(600));
  if (!status.success()) throw InfraError("ansible/make-bundle failed (" + status.describe() + "): " + last_line_of(file_text(log)));
}

}  // namespace vmlat
