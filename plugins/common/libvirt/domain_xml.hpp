// A libvirt domain XML read into what vmlat looks at: the real-time tuning
// (cputune, memoryBacking, pmu, the CPU model's features, the balloon) and
// the vmlat agent's channel. Parsed with libxml2 (no network, no entity
// substitution, no DTD loading): domain XML is the user's file or what a
// libvirtd answered, and neither is trusted.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vmlat::libvirt {

// Not a domain XML vmlat can read (syntax, no <domain> root, a cpuset that is
// not a CPU list...). what() says where.
class DomainXmlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// libvirt's cpuset syntax: "0-3,^2,8" (ranges, exclusions with '^').
// Throws DomainXmlError naming `where` when `text` is not one.
std::vector<int> parse_cpuset(std::string_view text, const std::string& where);

struct VcpuSched {
  std::vector<int> vcpus;  // the vcpus attribute, expanded
  std::string scheduler;   // "fifo", "rr", "batch", "idle", "other"
  std::optional<int> priority;
  std::string vcpus_text;  // as written, for XPaths in findings
};

struct Channel {
  std::string type;         // "unix", "pty", ...
  std::string source_mode;  // "bind" or "connect"
  std::string source_path;  // empty: none given (libvirt picks one when it starts the domain)
  std::string target_type;  // "virtio"
  std::string target_name;  // "org.vmlat.0"
};

struct DomainXml {
  std::string type;  // "kvm", "qemu"
  std::string name, uuid;
  int vcpus = 1;                                // <vcpu> (the maximum)
  std::map<int, std::vector<int>> vcpupin;      // vcpu -> host CPUs
  std::map<int, std::string> vcpupin_text;      // vcpu -> cpuset as written
  std::optional<std::vector<int>> emulatorpin;  // host CPUs
  std::string emulatorpin_text;
  std::vector<VcpuSched> vcpusched;
  bool has_memory_backing = false, hugepages = false, locked = false, nosharepages = false;
  std::optional<std::string> pmu_state;  // <features><pmu state=.../>; nullopt: no <pmu>
  bool has_features = false;
  std::string cpu_mode;                            // "host-passthrough", "host-model", "custom", "" (no <cpu>)
  std::map<std::string, std::string> cpu_features;  // name -> policy
  std::optional<std::string> memballoon_model;     // nullopt: no <memballoon> (QEMU domains then get one)
  std::vector<Channel> channels;
  std::string kernel, initrd, cmdline;  // <os> direct kernel boot

  // The channel whose target name is `name`, if any.
  const Channel* channel(std::string_view name) const;
};

// Parses `xml` (at most 4 MiB). Throws DomainXmlError.
DomainXml parse_domain_xml(std::string_view xml);

}  // namespace vmlat::libvirt
