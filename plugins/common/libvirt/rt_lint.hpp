// The real-time lint of a libvirt domain: libvirt's kbase "KVM real time"
// rules checked on the domain XML, and on the host the domain runs on
// (plugins/common/libvirt/README.md lists every rule). Shared by the libvirt
// backend (facts.backend.lint) and `vmlat lint-domain` (vmlat-lint-domain).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <vmlat/json.hpp>

#include "domain_xml.hpp"

namespace vmlat::libvirt {

struct Finding {
  std::string rule;      // "vcpusched", "host-isolcpus", ...
  std::string severity;  // "error" or "warning"
  std::string path;      // XPath of the element concerned ("/domain/cputune/vcpusched"), or "host:..."
  std::string message;   // what is wrong, naming the values
  std::string fix;       // the XML (or host setting) that makes the rule hold
};

struct Rule {
  const char* id;
  const char* severity;
  bool host;  // needs the host's view
  const char* what;
};
// Every rule, in the order findings are reported.
const std::vector<Rule>& rules();

// What the host-side rules look at: the kernel's view of its CPUs.
struct HostView {
  std::vector<int> cpus;       // present CPUs (/sys/devices/system/cpu/present)
  std::vector<int> isolated;   // /sys/devices/system/cpu/isolated (isolcpus=)
  std::vector<int> nohz_full;  // /sys/devices/system/cpu/nohz_full
  bool tsc_deadline = false;   // the host CPU's tsc_deadline_timer flag
  std::string source = "this host";
};
// This machine's view (missing files read as empty lists).
HostView read_host_view();

struct LintReport {
  std::vector<Finding> findings;
  std::vector<int> rt_vcpus;  // the vCPUs the rules treat as real-time
  bool host_checked = false;
};

// Checks `d` against every rule; host rules only when `host` is given.
LintReport lint_domain(const DomainXml& d, const HostView* host);

// {"rules":[{"rule","severity","checked"}], "findings":[{rule,severity,path,message,fix}],
//  "errors":N, "warnings":N, "rt_vcpus":[...], "host":{...} | null}
json lint_json(const LintReport& report, const HostView* host);

}  // namespace vmlat::libvirt
