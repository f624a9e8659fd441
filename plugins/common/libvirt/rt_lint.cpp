#include "rt_lint.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <vmlat/cpus.hpp>

namespace vmlat::libvirt {

namespace {

std::string list(const std::vector<int>& v) { return v.empty() ? std::string("none") : format_cpu_list(v); }

std::vector<int> read_cpu_file(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  // nohz_full reads "(null)" on kernels booted without it.
  if (s.empty() || s.find_first_of("0123456789") == std::string::npos) return {};
  try {
    return parse_cpu_list(s);
  } catch (const std::exception&) {
    return {};
  }
}

bool contains(const std::vector<int>& set, int c) { return std::find(set.begin(), set.end(), c) != set.end(); }

std::vector<int> minus(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  for (int c : a)
    if (!contains(b, c)) out.push_back(c);
  return out;
}
std::vector<int> both(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  for (int c : a)
    if (contains(b, c)) out.push_back(c);
  return out;
}

bool rt_scheduler(const std::string& s) { return s == "fifo" || s == "rr"; }

}  // namespace

const std::vector<Rule>& rules() {
  static const std::vector<Rule> all = {
      {"vcpupin", "error", false, "every vCPU has a <vcpupin>"},
      {"vcpupin-exclusive", "error", false, "each real-time vCPU is pinned to one host CPU of its own"},
      {"emulatorpin", "error", false, "<emulatorpin> is set and keeps the emulator off the real-time vCPUs' CPUs"},
      {"vcpusched", "error", false, "the real-time vCPUs run SCHED_FIFO (<vcpusched scheduler='fifo'>)"},
      {"vcpusched-priority", "warning", false, "real-time vCPUs run at FIFO priority 1"},
      {"housekeeping-vcpu", "warning", false, "one vCPU stays non-real-time for the guest's housekeeping"},
      {"hugepages", "warning", false, "guest memory on huge pages (<memoryBacking><hugepages/>)"},
      {"locked", "error", false, "guest memory locked (<memoryBacking><locked/>)"},
      {"nosharepages", "warning", false, "no KSM page sharing (<memoryBacking><nosharepages/>)"},
      {"pmu", "warning", false, "PMU virtualization off (<features><pmu state='off'/>)"},
      {"tsc-deadline", "error", false, "the guest CPU has the TSC deadline timer (required, or host-passthrough)"},
      {"memballoon", "warning", false, "no memory balloon (<memballoon model='none'/>)"},
      {"host-cpus", "error", true, "every pinned CPU exists on the host"},
      {"host-isolcpus", "error", true, "the real-time vCPUs' CPUs are isolated on the host (isolcpus=)"},
      {"host-nohz-full", "warning", true, "the real-time vCPUs' CPUs are tickless on the host (nohz_full=)"},
      {"emulatorpin-isolated", "error", true, "the emulator's CPUs are housekeeping CPUs, not isolated ones"},
  };
  return all;
}

HostView read_host_view() {
  HostView h;
  h.cpus = read_cpu_file("/sys/devices/system/cpu/present");
  h.isolated = read_cpu_file("/sys/devices/system/cpu/isolated");
  h.nohz_full = read_cpu_file("/sys/devices/system/cpu/nohz_full");
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w)
      if (w == "tsc_deadline_timer") h.tsc_deadline = true;
    break;
  }
  return h;
}

LintReport lint_domain(const DomainXml& d, const HostView* host) {
  LintReport r;
  auto add = [&](const char* rule, std::string path, std::string message, std::string fix) {
    for (const auto& x : rules())
      if (std::string(x.id) == rule) r.findings.push_back({rule, x.severity, std::move(path), std::move(message), std::move(fix)});
  };

  // Real-time vCPUs: those with an RT scheduler; without any vcpusched, the
  // kbase layout is assumed (vCPU 0 housekeeping, the others real-time).
  std::set<int> rt;
  bool any_sched = false;
  for (const auto& s : d.vcpusched) {
    any_sched = true;
    if (rt_scheduler(s.scheduler))
      for (int v : s.vcpus)
        if (v < d.vcpus) rt.insert(v);
  }
  if (!any_sched)
    for (int v = d.vcpus > 1 ? 1 : 0; v < d.vcpus; ++v) rt.insert(v);
  r.rt_vcpus.assign(rt.begin(), rt.end());

  // vcpupin
  std::vector<int> unpinned;
  for (int v = 0; v < d.vcpus; ++v)
    if (!d.vcpupin.count(v)) unpinned.push_back(v);
  if (!unpinned.empty())
    add("vcpupin", "/domain/cputune/vcpupin", "vCPU(s) " + list(unpinned) + " have no <vcpupin>: the host may run them anywhere",
        "<cputune><vcpupin vcpu='N' cpuset='ISOLATED_CPU'/></cputune> for every vCPU");

  // vcpupin-exclusive
  {
    std::map<int, std::vector<int>> users;
    std::vector<std::string> wide;
    for (int v : r.rt_vcpus) {
      auto it = d.vcpupin.find(v);
      if (it == d.vcpupin.end()) continue;
      if (it->second.size() != 1) wide.push_back("vCPU " + std::to_string(v) + " on " + list(it->second));
      for (int c : it->second) users[c].push_back(v);
    }
    std::vector<std::string> shared;
    for (const auto& [cpu, vs] : users)
      if (vs.size() > 1) shared.push_back("host CPU " + std::to_string(cpu) + " runs vCPUs " + list(vs));
    if (!wide.empty() || !shared.empty()) {
      std::string m;
      for (const auto& s : wide) m += (m.empty() ? "" : "; ") + s + " (more than one CPU)";
      for (const auto& s : shared) m += (m.empty() ? "" : "; ") + s;
      add("vcpupin-exclusive", "/domain/cputune/vcpupin", "real-time vCPUs are not one per host CPU: " + m,
          "one <vcpupin vcpu='N' cpuset='C'/> per real-time vCPU, each C a different isolated CPU");
    }
  }

  // emulatorpin
  {
    std::vector<int> rt_cpus;
    for (int v : r.rt_vcpus)
      if (auto it = d.vcpupin.find(v); it != d.vcpupin.end())
        for (int c : it->second)
          if (!contains(rt_cpus, c)) rt_cpus.push_back(c);
    std::sort(rt_cpus.begin(), rt_cpus.end());
    if (!d.emulatorpin)
      add("emulatorpin", "/domain/cputune/emulatorpin",
          "no <emulatorpin>: QEMU's emulator threads may run on the real-time vCPUs' CPUs",
          "<cputune><emulatorpin cpuset='HOUSEKEEPING_CPUS'/></cputune>");
    else if (auto overlap = both(*d.emulatorpin, rt_cpus); !overlap.empty())
      add("emulatorpin", "/domain/cputune/emulatorpin",
          "<emulatorpin cpuset='" + d.emulatorpin_text + "'> shares CPU(s) " + list(overlap) + " with real-time vCPUs",
          "<emulatorpin cpuset='...'/> on housekeeping CPUs only, none of " + list(rt_cpus));
  }

  // vcpusched, vcpusched-priority
  {
    std::vector<std::string> bad;
    bool fifo = false;
    std::vector<std::string> prio;
    for (const auto& s : d.vcpusched) {
      if (s.scheduler == "fifo") {
        fifo = true;
        if (s.priority.value_or(0) != 1)
          prio.push_back("vcpus '" + s.vcpus_text + "' priority " + (s.priority ? std::to_string(*s.priority) : std::string("unset")));
      } else if (rt_scheduler(s.scheduler)) {
        bad.push_back("vcpus '" + s.vcpus_text + "' scheduler '" + s.scheduler + "'");
      }
    }
    if (!fifo || !bad.empty())
      add("vcpusched", "/domain/cputune/vcpusched",
          !fifo && bad.empty() ? std::string("no vCPU runs SCHED_FIFO: the host's normal threads preempt the guest's real-time work")
                               : "real-time vCPUs not on SCHED_FIFO: " + bad.front() + (bad.size() > 1 ? " (and more)" : ""),
          "<cputune><vcpusched vcpus='" + (r.rt_vcpus.empty() ? std::string("1-N") : list(r.rt_vcpus)) +
              "' scheduler='fifo' priority='1'/></cputune>");
    if (!prio.empty())
      add("vcpusched-priority", "/domain/cputune/vcpusched[@scheduler='fifo']",
          "FIFO vCPUs not at priority 1: " + prio.front() +
              " (above 1 they also preempt the host's own real-time kernel threads on their CPUs)",
          "priority='1'");
  }

  // housekeeping-vcpu
  if (static_cast<int>(rt.size()) >= d.vcpus)
    add("housekeeping-vcpu", "/domain/vcpu",
        d.vcpus == 1 ? std::string("the only vCPU is real-time: the guest's housekeeping shares it")
                     : "all " + std::to_string(d.vcpus) + " vCPUs are real-time: none is left for the guest's housekeeping",
        "<vcpu>N+1</vcpu> with vCPU 0 pinned to a housekeeping CPU and left out of <vcpusched>");

  // memoryBacking
  if (!d.hugepages)
    add("hugepages", "/domain/memoryBacking/hugepages", "guest memory is not backed by huge pages (TLB misses, page faults)",
        "<memoryBacking><hugepages/></memoryBacking> (and huge pages reserved on the host)");
  if (!d.locked)
    add("locked", "/domain/memoryBacking/locked", "guest memory is not locked: the host may swap or migrate its pages",
        "<memoryBacking><locked/></memoryBacking>");
  if (!d.nosharepages)
    add("nosharepages", "/domain/memoryBacking/nosharepages", "KSM may merge the guest's pages (copy-on-write faults)",
        "<memoryBacking><nosharepages/></memoryBacking>");

  if (d.pmu_state.value_or("") != "off")
    add("pmu", "/domain/features/pmu",
        d.pmu_state ? "<pmu state='" + *d.pmu_state + "'/>: the virtual PMU costs exits on every context switch"
                    : std::string("no <pmu state='off'/>: the hypervisor's default exposes a virtual PMU"),
        "<features><pmu state='off'/></features>");

  {
    auto it = d.cpu_features.find("tsc-deadline");
    const bool required = it != d.cpu_features.end() && (it->second == "require" || it->second == "force");
    if (!required && d.cpu_mode != "host-passthrough")
      add("tsc-deadline", "/domain/cpu/feature[@name='tsc-deadline']",
          d.cpu_mode.empty() ? std::string("no <cpu>: the default CPU model need not offer the TSC deadline timer")
                             : "<cpu mode='" + d.cpu_mode + "'> does not require tsc-deadline" +
                                   (it != d.cpu_features.end() ? " (policy '" + it->second + "')" : std::string()),
          "<cpu ...><feature policy='require' name='tsc-deadline'/></cpu>");
  }

  if (d.memballoon_model.value_or("") != "none")
    add("memballoon", "/domain/devices/memballoon",
        d.memballoon_model ? "<memballoon model='" + *d.memballoon_model + "'/>: ballooning takes pages away at run time"
                           : std::string("no <memballoon>: libvirt adds a virtio balloon to QEMU domains"),
        "<devices><memballoon model='none'/></devices>");

  if (host) {
    r.host_checked = true;
    std::vector<int> rt_cpus, all_pins;
    for (const auto& [v, cpus] : d.vcpupin)
      for (int c : cpus) {
        if (!contains(all_pins, c)) all_pins.push_back(c);
        if (rt.count(v) && !contains(rt_cpus, c)) rt_cpus.push_back(c);
      }
    if (d.emulatorpin)
      for (int c : *d.emulatorpin)
        if (!contains(all_pins, c)) all_pins.push_back(c);
    std::sort(rt_cpus.begin(), rt_cpus.end());
    std::sort(all_pins.begin(), all_pins.end());
    if (auto missing = minus(all_pins, host->cpus); !missing.empty())
      add("host-cpus", "/domain/cputune", "pinned to CPU(s) " + list(missing) + " that " + host->source + " does not have (present: " +
                                              list(host->cpus) + ")",
          "pins within " + list(host->cpus));
    if (auto outside = minus(rt_cpus, host->isolated); !outside.empty())
      add("host-isolcpus", "/domain/cputune/vcpupin",
          "real-time vCPUs run on CPU(s) " + list(outside) + " that " + host->source + " does not isolate (isolated: " +
              list(host->isolated) + ")",
          "isolcpus=" + list(rt_cpus) + " on the host's kernel command line, or pin the real-time vCPUs to isolated CPUs");
    if (auto ticking = minus(rt_cpus, host->nohz_full); !ticking.empty())
      add("host-nohz-full", "/domain/cputune/vcpupin",
          "real-time vCPUs run on CPU(s) " + list(ticking) + " that are not nohz_full on " + host->source + " (nohz_full: " +
              list(host->nohz_full) + ")",
          "nohz_full=" + list(rt_cpus) + " on the host's kernel command line");
    if (d.emulatorpin)
      if (auto on_isolated = both(*d.emulatorpin, host->isolated); !on_isolated.empty())
        add("emulatorpin-isolated", "/domain/cputune/emulatorpin",
            "the emulator runs on isolated CPU(s) " + list(on_isolated) + " of " + host->source,
            "<emulatorpin cpuset='" + list(minus(host->cpus, host->isolated)) + "'/> (the housekeeping CPUs)");
  }
  return r;
}

json lint_json(const LintReport& report, const HostView* host) {
  json rules_j = json::array();
  for (const auto& x : rules())
    rules_j.push_back(json{{"rule", x.id}, {"severity", x.severity}, {"checked", !x.host || report.host_checked}, {"what", x.what}});
  json findings = json::array();
  int errors = 0, warnings = 0;
  for (const auto& f : report.findings) {
    findings.push_back(json{{"rule", f.rule}, {"severity", f.severity}, {"path", f.path}, {"message", f.message}, {"fix", f.fix}});
    (f.severity == "error" ? errors : warnings)++;
  }
  json h = nullptr;
  if (host)
    h = json{{"source", host->source},
             {"cpus", format_cpu_list(host->cpus)},
             {"isolated", format_cpu_list(host->isolated)},
             {"nohz_full", format_cpu_list(host->nohz_full)},
             {"tsc_deadline_timer", host->tsc_deadline}};
  return json{{"rules", rules_j}, {"findings", findings}, {"errors", errors}, {"warnings", warnings},
              {"rt_vcpus", report.rt_vcpus}, {"host", h}};
}

}  // namespace vmlat::libvirt
