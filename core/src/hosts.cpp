#include "hosts.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "bounded.hpp"
#include "cell_support.hpp"
#include "facts.hpp"
#include "loader.hpp"
#include "machines.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/local.hpp"
#include "vmlat/plugin.hpp"
#include "vmlat/process.hpp"
#include "vmlat/text.hpp"

namespace vmlat {

RemoteLayout remote_layout(const HostSpec& host) {
  RemoteLayout layout;
  auto var = [&](const char* key, std::string& into) {
    if (host.vars.contains(key) && host.vars[key].is_string() && !host.vars[key].get<std::string>().empty())
      into = host.vars[key].get<std::string>();
  };
  var("vmlat_common_prefix", layout.prefix);
  var("vmlat_common_work_dir", layout.work_dir);
  var("vmlat_common_lock_dir", layout.lock_dir);
  return layout;
}

SshTarget ssh_target_of(const HostSpec& h, std::filesystem::path control_path) {
  return SshTarget{h.name, h.address, h.port, h.user, h.identity_file, h.known_hosts, std::move(control_path)};
}

namespace {

bool plain_name(const std::string& s) {
  return !s.empty() && s.size() <= 64 && s.front() != '-' && s.front() != '.' &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool plain_word(const std::string& s) {
  return !s.empty() && s.front() != '-' &&
         std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<HostSpec> hosts_from_inventory(const std::filesystem::path& inventory, const std::filesystem::path& scratch) {
  std::error_code ec;
  if (!std::filesystem::exists(inventory, ec))
    throw PlanError(inventory.string() + ": no such inventory file");
  std::filesystem::create_directories(scratch);
  auto out = scratch / "inventory.out", err = scratch / "inventory.err";
  // ansible-inventory reads every format Ansible does (INI, YAML, scripts).
  auto p = Process::spawn(ProcessSpec{{"ansible-inventory", "-i", inventory.string(), "--list"}, {}, out, err, {}});
  auto status = p.wait(Clock::now() + std::chrono::seconds(120));
  std::string text = read_text(out);
  std::filesystem::remove(out, ec);  // it may hold the inventory's secrets
  if (!status.success()) {
    std::string why = trim(read_text(err));
    std::filesystem::remove(err, ec);
    throw PlanError(inventory.string() + ": ansible-inventory failed (" + status.describe() + ")" + (why.empty() ? "" : ": " + why));
  }
  std::filesystem::remove(err, ec);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    throw PlanError(inventory.string() + ": ansible-inventory printed unreadable JSON: " + e.what());
  }
  json hostvars = doc.contains("_meta") ? doc["_meta"].value("hostvars", json::object()) : json::object();
  std::map<std::string, std::set<std::string>> tags;
  std::set<std::string> names;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "_meta" || !it.value().is_object()) continue;
    for (const auto& h : it.value().value("hosts", json::array())) {
      if (!h.is_string()) continue;
      names.insert(h.get<std::string>());
      if (it.key() != "all" && it.key() != "ungrouped") tags[h.get<std::string>()].insert(it.key());
    }
  }
  for (auto it = hostvars.begin(); it != hostvars.end(); ++it) names.insert(it.key());
  std::vector<HostSpec> hosts;
  for (const auto& name : names) {
    if (!plain_name(name))
      throw PlanError(inventory.string() + ": host '" + name +
                      "' cannot be a vmlat host: its name may only contain letters, digits, '-', '_' and '.'");
    HostSpec h;
    h.name = name;
    h.location = Location{inventory.string(), 0, 0};
    const json vars = hostvars.value(name, json::object());
    auto str = [&](const char* key) -> std::string {
      if (!vars.contains(key)) return {};
      if (vars[key].is_string()) return vars[key].get<std::string>();
      if (vars[key].is_number_integer()) return std::to_string(vars[key].get<long long>());
      return {};
    };
    auto check = [&](const std::string& value, const char* what) {
      if (!value.empty() && !plain_word(value))
        throw PlanError(inventory.string() + ": host '" + name + "': " + what + " '" + value +
                        "' has spaces or control characters or starts with '-'");
    };
    if (str("ansible_connection") == "local") {
      h.address.clear();
    } else {
      h.address = str("ansible_host").empty() ? name : str("ansible_host");
      check(h.address, "ansible_host");
    }
    if (!str("ansible_port").empty()) {
      try {
        h.port = std::stoi(str("ansible_port"));
      } catch (const std::exception&) {
        throw PlanError(inventory.string() + ": host '" + name + "': ansible_port is not a number");
      }
      if (h.port < 1 || h.port > 65535) throw PlanError(inventory.string() + ": host '" + name + "': ansible_port out of range");
    }
    h.user = str("ansible_user");
    check(h.user, "ansible_user");
    h.identity_file = str("ansible_ssh_private_key_file");
    if (h.identity_file.empty()) h.identity_file = str("ansible_private_key_file");
    check(h.identity_file, "ansible_ssh_private_key_file");
    h.identity_file = path_for_children(h.identity_file);
    // vmlat_known_hosts: the known_hosts file for this host (the plan's
    // known_hosts); else ssh's own.
    h.known_hosts = str("vmlat_known_hosts");
    check(h.known_hosts, "vmlat_known_hosts");
    h.known_hosts = path_for_children(h.known_hosts);
    // vmlat_provision=false: a host provisioned otherwise (a lab image, no
    // Python for Ansible): the plan's `provision = false`.
    if (vars.contains("vmlat_provision")) {
      const json& p = vars["vmlat_provision"];
      std::string text = p.is_string() ? p.get<std::string>() : p.is_boolean() ? (p.get<bool>() ? "true" : "false") : "";
      for (auto& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (text == "false" || text == "no" || text == "0") h.provision = false;
      else if (text != "true" && text != "yes" && text != "1")
        throw PlanError(inventory.string() + ": host '" + name + "': vmlat_provision must be true or false");
    }
    for (const auto& t : tags[name]) h.tags.push_back(t);
    for (const char* key : {"vmlat_common_prefix", "vmlat_common_work_dir", "vmlat_common_lock_dir"})
      if (!str(key).empty()) {
        check(str(key), key);
        if (str(key).front() != '/' || str(key).find("/..") != std::string::npos)
          throw PlanError(inventory.string() + ": host '" + name + "': " + key + " must be an absolute path without '..'");
        h.vars[key] = str(key);
      }
    hosts.push_back(std::move(h));
  }
  if (hosts.empty()) throw PlanError(inventory.string() + ": the inventory has no hosts");
  return hosts;
}

json inventory_for(const std::vector<HostSpec>& hosts) {
  json all_hosts = json::object();
  std::map<std::string, json> groups;
  for (const auto& h : hosts) {
    json vars = h.vars;  // validated names; values are data in JSON, never lines
    if (h.local()) {
      vars["ansible_connection"] = "local";
    } else {
      vars["ansible_host"] = h.address;
      if (h.port) vars["ansible_port"] = h.port;
      if (!h.user.empty()) vars["ansible_user"] = h.user;
      // The roles need root; another user needs sudo (ansible/README.md).
      if (!h.user.empty() && h.user != "root") vars["ansible_become"] = true;
      if (!h.identity_file.empty()) vars["ansible_ssh_private_key_file"] = h.identity_file;
      // The same host key policy as vmlat's own ssh commands (ssh.cpp).
      std::string extra = "-o StrictHostKeyChecking=accept-new";
      if (!h.known_hosts.empty()) extra += " -o UserKnownHostsFile=" + h.known_hosts;
      vars["ansible_ssh_extra_args"] = extra;
    }
    all_hosts[h.name] = vars;
    for (const auto& t : h.tags) groups[t]["hosts"][h.name] = json::object();
  }
  json children = json::object();
  for (auto& [name, group] : groups) children[name] = group;
  return json{{"all", {{"hosts", all_hosts}, {"children", children}}}};
}

std::string HostState::summary() const {
  if (!reachable) return "unreachable: " + unreachable;
  auto text = [&](const char* key) {
    return facts.contains(key) && facts[key].is_string() ? facts[key].get<std::string>() : std::string("?");
  };
  std::string s = text("kernel_release") + " " + text("preempt_model");
  if (facts.contains("cpu_count") && facts["cpu_count"].is_number()) s += ", " + std::to_string(facts["cpu_count"].get<int>()) + " CPUs";
  if (facts.contains("hypervisor") && facts["hypervisor"].is_object()) {
    const auto& hv = facts["hypervisor"];
    if (hv.contains("xen") && hv["xen"].is_string()) s += ", Xen " + hv["xen"].get<std::string>();
    if (hv.contains("kvm_device") && hv["kvm_device"].is_boolean() && hv["kvm_device"].get<bool>()) s += ", /dev/kvm";
  }
  return s;
}

namespace {

// Facts of a host in one round trip (each command over ssh costs a session):
// a constant script of ours runs the commands collect_system_facts runs and
// prints "key RS value US" records (GS as the value: the command failed).
json remote_facts(Executor& there) {
  std::vector<std::pair<std::string, std::vector<std::string>>> commands = system_fact_commands();
  commands.push_back({"kvm_device", {"test", "-c", "/dev/kvm"}});
  for (const auto& c : identity_fact_commands()) commands.push_back(c);
  std::map<std::string, std::optional<std::string>> raw;
  try {
    raw = read_in_one_round_trip(there, commands);
  } catch (const InfraError& e) {
    throw InfraError("cannot read the facts of " + there.name() + ": " + e.what());
  }
  auto read = [&](const std::string& key) -> std::optional<std::string> {
    auto it = raw.find(key);
    return it == raw.end() ? std::nullopt : it->second;
  };
  json facts = system_facts_from(read);
  facts["hypervisor"] = json{{"kvm_device", raw.count("kvm_device") && raw["kvm_device"].has_value()}, {"xen", facts["xen_role"]}};
  facts["identity"] = identity_from(read);
  return facts;
}

// What runs guests here: /dev/kvm, and Xen (dom0 or a domU).
json hypervisor_facts(Executor& where) {
  auto ok = [&](std::vector<std::string> argv, std::string* out = nullptr) {
    try {
      auto r = where.run(Command{std::move(argv), std::chrono::seconds(20)});
      if (out) *out = trim(r.out);
      return r.ok();
    } catch (const InfraError&) {
      return false;
    }
  };
  json hv = json::object();
  hv["kvm_device"] = ok({"test", "-c", "/dev/kvm"});
  std::string type, caps;
  json xen = nullptr;
  if (ok({"cat", "/sys/hypervisor/type"}, &type) && type == "xen")
    xen = ok({"cat", "/proc/xen/capabilities"}, &caps) && caps.find("control_d") != std::string::npos ? "dom0" : "domU";
  hv["xen"] = xen;
  return hv;
}

HostState discover_one(const HostSpec& spec, std::shared_ptr<SshMaster> master, const std::filesystem::path& dir) {
  HostState state;
  state.spec = spec;
  try {
    if (spec.local()) {
      auto here = make_local_executor(dir, spec.name);
      state.facts = collect_system_facts(*here);
      state.facts["hypervisor"] = hypervisor_facts(*here);
      std::map<std::string, std::optional<std::string>> raw;
      try {
        raw = read_in_one_round_trip(*here, identity_fact_commands());
      } catch (const InfraError&) {
        // Unknown identity: this host is then in no group (machines.hpp).
      }
      state.facts["identity"] = identity_from([&](const std::string& key) -> std::optional<std::string> {
        auto it = raw.find(key);
        return it == raw.end() ? std::nullopt : it->second;
      });
      return state;
    }
    master->wait_ready(std::chrono::seconds(30));
    auto there = make_ssh_executor(master->target(), dir, remote_layout(spec).work_dir + "/tmp");
    state.facts = remote_facts(*there);
    state.master = std::move(master);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    state.reachable = false;
    state.unreachable = e.what();
  }
  return state;
}

}  // namespace

std::vector<HostState> discover_hosts(const std::vector<HostSpec>& hosts, const std::filesystem::path& scratch,
                                      std::size_t max_parallel) {
  std::vector<HostState> states(hosts.size());
  std::vector<std::exception_ptr> errors(hosts.size());
  // Up to max_parallel remote hosts, each master is kept for the run (the
  // provisioning and the host's worker reuse it): they start here, in the
  // caller's thread (see SshMaster), and connect in parallel. A larger lab
  // gets a master per host only while its facts are read, in the thread
  // that reads them: never more than max_parallel connections at a time.
  const auto remote = static_cast<std::size_t>(std::count_if(hosts.begin(), hosts.end(), [](const HostSpec& h) { return !h.local(); }));
  const bool keep = remote <= max_parallel;
  std::vector<std::shared_ptr<SshMaster>> masters(hosts.size());
  std::filesystem::path sockets;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    std::filesystem::create_directories(scratch / hosts[i].name);
    if (hosts[i].local()) continue;
    try {
      if (sockets.empty()) sockets = control_socket_dir(scratch / "ssh");
      if (keep)
        masters[i] = std::make_shared<SshMaster>(ssh_target_of(hosts[i], sockets / hosts[i].name), scratch / hosts[i].name / "ssh-master.log");
    } catch (const std::exception&) {
      errors[i] = std::current_exception();
    }
  }
  for_each_bounded(hosts.size(), max_parallel, [&](std::size_t i) {
    if (errors[i]) return;
    try {
      auto master = masters[i];
      if (!master && !hosts[i].local())
        master = std::make_shared<SshMaster>(ssh_target_of(hosts[i], sockets / hosts[i].name), scratch / hosts[i].name / "ssh-master.log");
      states[i] = discover_one(hosts[i], master, scratch / hosts[i].name);
      if (!keep) states[i].master.reset();
    } catch (...) {
      errors[i] = std::current_exception();
    }
  });
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return states;
}

Placement place_cells(const Plan& plan, std::vector<Cell>& cells, const std::vector<HostState>& hosts, bool placed,
                      PluginRegistry& registry, bool use_facts) {
  Placement placement;
  if (!placed) {  // the implicit local host: every cell, as always
    for (auto& c : cells) c.spec.host_name = hosts.front().spec.name;
    return placement;
  }
  // What each backend instance asks of a host: its plugin's descriptor
  // says (nothing is created or configured to ask).
  std::map<std::string, std::vector<std::string>> needs;
  for (const auto& [name, instance] : plan.backends)
    if (const PluginInfo* info = registry.find(instance.plugin)) needs[name] = info->host_tags;
  std::map<std::string, std::size_t> load;
  for (auto& cell : cells) {
    std::vector<std::string> why_not;
    const HostState* best = nullptr;
    auto pinned = cell.spec.axis("host");
    auto kernel = cell.spec.axis("host_kernel");
    for (const auto& h : hosts) {
      if (pinned && *pinned != h.spec.name) continue;
      std::vector<std::string> missing;
      for (const auto& tag : needs[cell.backend])
        if (std::find(h.spec.tags.begin(), h.spec.tags.end(), tag) == h.spec.tags.end()) missing.push_back(tag);
      if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        why_not.push_back(h.spec.name + " lacks the tag " + list + " (backend " + plan.backends.at(cell.backend).plugin +
                          " needs it)");
        continue;
      }
      // A host that cannot be reached may still be the right one: its cells
      // then fail as infrastructure errors, with ssh's reason.
      if (kernel && *kernel != "any" && h.reachable && use_facts) {
        bool rt = flag_or(h.facts, "preempt_rt", false);
        if ((*kernel == "rt") != rt) {
          why_not.push_back(h.spec.name + " runs " + text_or(h.facts, "kernel_release", "?") + " (" +
                            text_or(h.facts, "preempt_model", "?") + "), the cell needs a" +
                            (*kernel == "rt" ? " PREEMPT_RT" : " non-RT") + " host kernel");
          continue;
        }
      }
      // The least loaded of the hosts that can take it; reachable first.
      if (!best || (h.reachable && !best->reachable) ||
          (h.reachable == best->reachable && load[h.spec.name] < load[best->spec.name]))
        best = &h;
    }
    if (!best) {
      std::string reasons;
      for (const auto& w : why_not) reasons += (reasons.empty() ? "" : "; ") + w;
      placement.problems.push_back("cell " + cell.spec.id + ": no host can take it: " +
                                   (reasons.empty() ? "no host is named " + pinned.value_or("?") : reasons));
      continue;
    }
    cell.spec.host_name = best->spec.name;
    ++load[best->spec.name];
  }
  return placement;
}

}  // namespace vmlat
