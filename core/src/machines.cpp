#include "machines.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>
#include <numeric>

#include "plan.hpp"
#include "sha256.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/text.hpp"

namespace vmlat {

const std::vector<std::pair<std::string, std::vector<std::string>>>& identity_fact_commands() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"machine_id", {"cat", "/etc/machine-id"}},
      {"boot_id", {"cat", "/proc/sys/kernel/random/boot_id"}}};
  return commands;
}

json identity_from(const std::function<std::optional<std::string>(const std::string&)>& read) {
  // Hashed with a constant of ours: equal IDs stay equal, and the ID itself
  // is not in run.json (which may be published).
  auto hashed = [&](const std::string& key) -> json {
    auto value = read(key);
    if (!value || trim(*value).empty()) return nullptr;
    return sha256_hex("vmlat machine identity 1\n" + trim(*value)).substr(0, 32);
  };
  return json{{"machine_id", hashed("machine_id")}, {"boot_id", hashed("boot_id")}};
}

namespace {

std::string identity_part(const HostState& h, const char* key) {
  if (!h.reachable || !h.facts.contains("identity") || !h.facts["identity"].is_object()) return {};
  return text_or(h.facts["identity"], key, "");
}

// One machine: the same boot id (one running kernel), or, when either boot
// id is unknown, the same machine-id. Two clones of a VM image share a
// machine-id but not a boot id: they are two machines.
bool one_machine(const HostState& a, const HostState& b) {
  auto boot_a = identity_part(a, "boot_id"), boot_b = identity_part(b, "boot_id");
  if (!boot_a.empty() && !boot_b.empty()) return boot_a == boot_b;
  auto id_a = identity_part(a, "machine_id"), id_b = identity_part(b, "machine_id");
  return !id_a.empty() && id_a == id_b;
}

// What another machine calls itself, fit for one line of a message.
std::string printable(std::string s) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) c = '?';
  return s.size() > 64 ? s.substr(0, 64) + "..." : s;
}

}  // namespace

std::vector<MachineGroup> same_machines(const std::vector<HostState>& hosts) {
  // Union-find over the pairs that are one machine.
  std::vector<std::size_t> root(hosts.size());
  std::iota(root.begin(), root.end(), 0);
  auto find = [&](std::size_t i) {
    while (root[i] != i) i = root[i] = root[root[i]];
    return i;
  };
  for (std::size_t i = 0; i < hosts.size(); ++i)
    for (std::size_t j = i + 1; j < hosts.size(); ++j)
      if (one_machine(hosts[i], hosts[j])) {
        auto ri = find(i), rj = find(j);
        root[std::max(ri, rj)] = std::min(ri, rj);
      }
  std::map<std::size_t, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < hosts.size(); ++i) members[find(i)].push_back(i);
  std::vector<MachineGroup> groups;
  for (const auto& [first, group] : members) {
    if (group.size() < 2) continue;  // alone on its machine
    MachineGroup g{{}, printable(text_or(hosts[first].facts, "hostname", "?")), "one running kernel"};
    for (auto i : group) {
      g.hosts.push_back(hosts[i].spec.name);
      if (identity_part(hosts[i], "boot_id").empty()) g.known_by = "one machine-id";
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::vector<std::string> same_machine_as(const std::vector<MachineGroup>& groups, const std::string& host) {
  for (const auto& g : groups)
    if (std::find(g.hosts.begin(), g.hosts.end(), host) != g.hosts.end()) {
      std::vector<std::string> others;
      for (const auto& h : g.hosts)
        if (h != host) others.push_back(h);
      return others;
    }
  return {};
}

std::string describe(const MachineGroup& group) {
  std::string names;
  for (std::size_t i = 0; i < group.hosts.size(); ++i)
    names += (i == 0 ? "" : i + 1 == group.hosts.size() ? " and " : ", ") + group.hosts[i];
  return "hosts " + names + " are one machine (" + group.hostname + ", " + group.known_by + ")";
}

namespace {

// The group's hosts of this machine run in this vmlat (local) and those reached over ssh.
std::pair<std::vector<std::string>, std::vector<std::string>> local_and_ssh(const MachineGroup& g,
                                                                           const std::vector<HostState>& hosts,
                                                                           const std::function<bool(const std::string&)>& counts) {
  std::pair<std::vector<std::string>, std::vector<std::string>> split;
  for (const auto& name : g.hosts)
    for (const auto& h : hosts)
      if (h.spec.name == name && counts(name)) (h.spec.local() ? split.first : split.second).push_back(name);
  return split;
}

}  // namespace

std::string what_run_does(const MachineGroup& group, const std::vector<HostState>& hosts) {
  auto [here, over_ssh] = local_and_ssh(group, hosts, [](const std::string&) { return true; });
  if (!here.empty() && !over_ssh.empty()) return "vmlat run refuses to give cells to both " + here.front() + " and " + over_ssh.front();
  return "vmlat run measures their cells one at a time";
}

std::vector<std::string> same_machine_problems(const std::vector<MachineGroup>& groups, const std::vector<HostState>& hosts,
                                               const std::vector<Cell>& cells) {
  auto has_cells = [&](const std::string& host) {
    return std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return c.spec.host_name == host; });
  };
  std::vector<std::string> problems;
  for (const auto& g : groups) {
    auto [here, over_ssh] = local_and_ssh(g, hosts, has_cells);
    if (here.empty() || over_ssh.empty()) continue;
    problems.push_back(describe(g) + ": " + here.front() + " is this machine, whose cells run inside this vmlat under its " +
                       "measurement lock, and " + over_ssh.front() + " reaches it over ssh, whose cells would wait for " +
                       "that lock until the run ends; name the machine once in [hosts]");
  }
  return problems;
}

struct MachineQueue {
  std::mutex mutex;
  std::condition_variable changed;
  std::list<std::string> waiting;  // hosts that asked, in order
  std::string holder;              // empty: free
};

MachineTurns::MachineTurns(const std::vector<MachineGroup>& groups) {
  for (const auto& g : groups) {
    auto machine = std::make_shared<MachineQueue>();
    for (const auto& h : g.hosts) machine_of_[h] = machine;
  }
}

MachineTurns::Turn& MachineTurns::Turn::operator=(Turn&& other) noexcept {
  if (this != &other) {
    release();
    machine_ = std::exchange(other.machine_, nullptr);
  }
  return *this;
}

void MachineTurns::Turn::release() {
  if (!machine_) return;
  {
    std::lock_guard lock(machine_->mutex);
    machine_->holder.clear();
  }
  machine_->changed.notify_all();
  machine_ = nullptr;
}

MachineTurns::Turn MachineTurns::take(const std::string& host, const std::function<void(const std::string&)>& waiting) {
  Turn turn;
  auto it = machine_of_.find(host);
  if (it == machine_of_.end()) return turn;
  MachineQueue& m = *it->second;
  std::unique_lock lock(m.mutex);
  auto me = m.waiting.insert(m.waiting.end(), host);
  bool said = false;
  // Polled as well as notified: SIGINT sets a flag, it notifies nobody.
  while (!(m.holder.empty() && m.waiting.begin() == me)) {
    if (cancel_requested()) {
      m.waiting.erase(me);
      lock.unlock();
      m.changed.notify_all();
      return turn;
    }
    if (!said && waiting && !m.holder.empty()) {
      said = true;
      const std::string holder = m.holder;
      lock.unlock();
      waiting(holder);
      lock.lock();
      continue;
    }
    m.changed.wait_for(lock, std::chrono::milliseconds(100));
  }
  m.waiting.erase(me);
  m.holder = host;
  turn.machine_ = &m;
  return turn;
}

}  // namespace vmlat
