#include "run/host_share.hpp"

#include <algorithm>
#include <ostream>
#include <set>

#include "app.hpp"
#include "run/summary.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

namespace {

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : ", ") + w;
  return s;
}

// The names `selectors` pick, in the order of `specs`; a selector that
// picks nothing is said on `err` with what there is.
bool resolve(const std::vector<HostSpec>& specs, const std::vector<std::string>& selectors, std::ostream& err,
             std::set<std::string>& names) {
  std::vector<std::string> all_names;
  std::set<std::string> all_tags;
  for (const auto& h : specs) {
    all_names.push_back(h.name);
    all_tags.insert(h.tags.begin(), h.tags.end());
  }
  bool ok = true;
  for (const auto& selector : selectors) {
    const bool by_tag = selector.rfind("tag=", 0) == 0;
    const std::string want = by_tag ? selector.substr(4) : selector;
    bool found = false;
    for (const auto& h : specs)
      if (by_tag ? std::find(h.tags.begin(), h.tags.end(), want) != h.tags.end() : h.name == want) {
        names.insert(h.name);
        found = true;
      }
    if (found) continue;
    ok = false;
    if (by_tag)
      err << "vmlat: --host tag=" << one_line(want) << ": no host has that tag (tags: "
          << joined(std::vector<std::string>(all_tags.begin(), all_tags.end())) << ")\n";
    else
      err << "vmlat: --host " << one_line(want) << ": the plan has no such host (hosts: " << joined(all_names) << ")\n";
  }
  return ok;
}

}  // namespace

int take_host_share(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::vector<HostSpec>& specs,
                    std::vector<Cell>& cells, std::ostream& err, json& share) {
  std::vector<std::string> selectors = options.host_share;
  if (!options.this_host.empty()) selectors.push_back(options.this_host);
  std::set<std::string> names;
  if (!resolve(specs, selectors, err, names)) return exit_code::usage;
  if (!options.this_host.empty() && options.this_host.rfind("tag=", 0) == 0) {
    err << "vmlat: --this-host takes a host name, not a tag: this machine is one host\n";
    return exit_code::usage;
  }

  // Every host as if it answered, no facts: the same cut in every job.
  std::vector<HostState> everyone;
  for (const auto& s : specs) {
    HostState h;
    h.spec = s;
    everyone.push_back(std::move(h));
  }
  Placement placement = place_cells(plan, cells, everyone, true, registry, /*use_facts=*/false);
  if (!placement.problems.empty()) {
    err << "vmlat: refused before anything ran: " << placement.problems.size() << " cell(s) cannot be placed on any host\n";
    for (const auto& p : placement.problems) err << "  " << p << "\n";
    return exit_code::infra;
  }

  json plan_cells = json::array();
  for (const auto& c : cells) plan_cells.push_back(json{{"id", c.spec.id}, {"host", c.spec.host_name}});
  json plan_hosts = json::array();
  for (const auto& s : specs) plan_hosts.push_back(s.name);
  share = json{{"hosts", json(std::vector<std::string>(names.begin(), names.end()))},
               {"this_host", options.this_host.empty() ? json(nullptr) : json(options.this_host)},
               {"plan_hosts", plan_hosts},
               {"cells", plan_cells}};

  std::vector<Cell> mine;
  for (auto& c : cells)
    if (names.count(c.spec.host_name)) mine.push_back(std::move(c));
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i].index = static_cast<int>(i + 1);
  cells = std::move(mine);

  std::vector<HostSpec> kept;
  for (auto& s : specs) {
    if (!names.count(s.name)) continue;
    if (s.name == options.this_host) {
      // Measured here, by this vmlat: nothing to reach, nothing to install.
      s.address.clear();
      s.provision = false;
    }
    kept.push_back(std::move(s));
  }
  specs = std::move(kept);
  return exit_code::pass;
}

std::vector<std::string> share_kernel_problems(const std::vector<Cell>& cells, const std::vector<HostState>& hosts) {
  std::vector<std::string> problems;
  for (const auto& c : cells) {
    const auto kernel = c.spec.axis("host_kernel");
    if (!kernel || *kernel == "any") continue;
    auto h = std::find_if(hosts.begin(), hosts.end(), [&](const HostState& s) { return s.spec.name == c.spec.host_name; });
    if (h == hosts.end() || !h->reachable) continue;  // its cells fail with ssh's reason
    const bool rt = flag_or(h->facts, "preempt_rt", false);
    if ((*kernel == "rt") == rt) continue;
    problems.push_back("cell " + c.spec.id + ": its share is host " + h->spec.name + ", which runs " +
                       text_or(h->facts, "kernel_release", "?") + " (" + text_or(h->facts, "preempt_model", "?") +
                       "), and the cell needs a" + (*kernel == "rt" ? " PREEMPT_RT" : " non-RT") +
                       " host kernel: pin it to a host that has one with the host axis (docs/fan-out.md)");
  }
  return problems;
}

}  // namespace vmlat
