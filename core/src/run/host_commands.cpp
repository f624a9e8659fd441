// `vmlat hosts PLAN` and `vmlat provision PLAN`: a plan's hosts without
// measuring anything.
#include <unistd.h>

#include <ostream>

#include "cell_support.hpp"
#include "hosts.hpp"
#include "machines.hpp"
#include "run/provision.hpp"
#include "run/run.hpp"
#include "run/summary.hpp"
#include "ssh.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/interrupt.hpp"

namespace vmlat {

namespace {


// The hosts of a plan (or inventory) and what they are; nullopt after
// printing why not.
std::optional<std::vector<HostState>> hosts_of(const Plan& plan, const std::optional<std::filesystem::path>& inventory,
                                               const std::filesystem::path& scratch, std::ostream& err, int* code) {
  std::vector<HostSpec> specs = plan.hosts;
  if (inventory) {
    try {
      specs = hosts_from_inventory(*inventory, scratch / "inventory");
    } catch (const std::exception& e) {
      err << "vmlat: --inventory: " << e.what() << "\n";
      *code = exit_code::usage;
      return std::nullopt;
    }
  }
  try {
    return discover_hosts(specs, scratch, plan.max_parallel_hosts);
  } catch (const Cancelled&) {
    *code = exit_code::interrupted;
    return std::nullopt;
  }
}

struct ScratchDir {
  std::filesystem::path dir;
  explicit ScratchDir(const std::string& what)
      : dir(std::filesystem::temp_directory_path() / ("vmlat-" + what + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

int list_hosts(const Plan& plan, const std::optional<std::filesystem::path>& inventory, bool as_json, std::ostream& out,
               std::ostream& err) {
  install_cancel_handlers();
  ScratchDir scratch("hosts");
  int code = exit_code::pass;
  auto hosts = hosts_of(plan, inventory, scratch.dir, err, &code);
  if (!hosts) return code;
  json list = json::array();
  bool all_reachable = true;
  const auto machines = same_machines(*hosts);
  for (const auto& h : *hosts) {
    all_reachable = all_reachable && h.reachable;
    list.push_back(json{{"name", h.spec.name},
                        {"address", h.spec.local() ? json("local") : json(h.spec.address)},
                        {"port", h.spec.port ? json(h.spec.port) : json(nullptr)},
                        {"user", h.spec.user.empty() ? json(nullptr) : json(h.spec.user)},
                        {"tags", h.spec.tags},
                        {"reachable", h.reachable},
                        {"error", h.reachable ? json(nullptr) : json(one_line(h.unreachable))},
                        {"same_machine_as", same_machine_as(machines, h.spec.name)},
                        {"facts", h.facts}});
  }
  if (as_json) {
    out << dump_json(list, 2) << "\n";
  } else {
    std::vector<std::size_t> w = {4, 7, 9, 4};
    auto address = [](const HostState& h) {
      return h.spec.local() ? std::string("local") : (h.spec.user.empty() ? "" : h.spec.user + "@") + h.spec.address +
                                                        (h.spec.port ? ":" + std::to_string(h.spec.port) : "");
    };
    auto tags = [](const HostState& h) {
      std::string t;
      for (const auto& tag : h.spec.tags) t += (t.empty() ? "" : ",") + tag;
      return t.empty() ? std::string("-") : t;
    };
    for (const auto& h : *hosts) {
      w[0] = std::max(w[0], h.spec.name.size());
      w[1] = std::max(w[1], address(h).size());
      w[3] = std::max(w[3], tags(h).size());
    }
    out << pad("HOST", w[0]) << "  " << pad("ADDRESS", w[1]) << "  " << pad("REACHABLE", w[2]) << "  " << pad("TAGS", w[3])
        << "  FACTS\n";
    for (const auto& h : *hosts)
      out << pad(h.spec.name, w[0]) << "  " << pad(address(h), w[1]) << "  " << pad(h.reachable ? "yes" : "no", w[2]) << "  "
          << pad(tags(h), w[3]) << "  " << one_line(h.summary()) << "\n";
    for (const auto& g : machines) out << describe(g) << ": " << what_run_does(g, *hosts) << "\n";
  }
  return all_reachable ? exit_code::pass : exit_code::infra;
}

int provision_hosts(const Plan& plan, const RunOptions& options, std::ostream& out, std::ostream& err) {
  install_cancel_handlers();
  ScratchDir scratch("provision");
  int code = exit_code::pass;
  auto hosts = hosts_of(plan, options.inventory, scratch.dir, err, &code);
  if (!hosts) return code;
  auto logs_dir = options.results_root ? *options.results_root : std::filesystem::path(plan.results_dir) / "provision";
  std::vector<HostState*> todo;
  int failures = 0;
  for (auto& h : *hosts) {
    if (h.spec.local() || !h.spec.provision) continue;
    if (h.reachable) {
      todo.push_back(&h);
      continue;
    }
    ++failures;
    out << h.spec.name << ": FAILED: " << one_line(h.unreachable) << "\n";
  }
  if (todo.empty() && failures == 0) {
    out << "no remote host to provision (hosts without an address are this machine)\n";
    return exit_code::pass;
  }
  if (todo.empty()) return exit_code::infra;
  std::optional<ProvisionSetup> setup;
  try {
    setup = prepare_provisioning(options.bundle, scratch.dir, scratch.dir / "bundle.log");
  } catch (const std::exception& e) {
    err << "vmlat provision: " << e.what() << "\n";
    return exit_code::infra;
  }
  std::vector<HostSpec> specs;
  for (const auto& h : *hosts) specs.push_back(h.spec);
  setup->inventory = options.inventory ? std::filesystem::absolute(*options.inventory) : scratch.dir / "inventory.json";
  if (!options.inventory) write_file_atomic(setup->inventory, dump_json(inventory_for(specs), 2) + "\n");
  setup->scratch = scratch.dir / "waves";
  setup->socket_dir = control_socket_dir(scratch.dir / "ssh");
  setup->max_parallel = plan.max_parallel_hosts;
  std::filesystem::create_directories(logs_dir);
  // A host's log is <host>.log; Ansible's whole output is named so that no
  // host's log can be it.
  ProvisionLogs logs{[&](const std::string& host) { return logs_dir / (host + ".log"); },
                     [&](std::size_t wave) { return logs_dir / ("ansible-playbook" + (wave ? "-" + std::to_string(wave + 1) : std::string()) + ".out"); },
                     [](const std::filesystem::path& p) { return p.string(); }};
  ProvisionEvents events{[&](const std::vector<std::string>& wave, const std::vector<std::string>&) {
                           err << "vmlat provision: " << wave.size() << " host(s), one ansible-playbook\n" << std::flush;
                         },
                         [&](const std::string& host, const std::string& failure) {
                           if (!failure.empty()) ++failures;
                           out << host << ": " << (failure.empty() ? "provisioned" : "FAILED: " + failure) << " (log: "
                               << logs.host(host).string() << ")\n"
                               << std::flush;
                         }};
  try {
    provision_hosts_in_waves(*setup, todo, same_machines(*hosts), logs, events);
  } catch (const Cancelled&) {
    return exit_code::interrupted;
  } catch (const std::exception& e) {
    err << "vmlat provision: " << e.what() << "\n";
    return exit_code::infra;
  }
  return failures ? exit_code::infra : exit_code::pass;
}

}  // namespace vmlat
