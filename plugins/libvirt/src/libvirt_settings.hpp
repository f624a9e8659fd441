// The libvirt backend's settings (README.md lists each with type, default,
// unit), the transient domain's XML and the rule against RT vCPUs that could
// take every host CPU.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <vmlat/settings.hpp>
#include <vmlat/ssh.hpp>

namespace vmlat::libvirt {

struct Config {
  std::string uri = "qemu:///system";
  // Exactly one of the two: the user's existing domain, or a transient one
  // vmlat defines from its guest images.
  std::string domain;
  bool define = false;
  bool start = false;                  // existing: may start it when shut off
  std::string channel = "org.vmlat.0";  // the agent's virtio-serial port name
  // How the probe reaches the guest: the vmlat agent on its channel, the
  // QEMU guest agent's guest-exec, or SSH to the address the plan gives.
  std::string access = "agent";
  std::string ssh_address, ssh_user = "root", ssh_identity_file, ssh_known_hosts;
  int ssh_port = 22;
  // define = true:
  std::string domain_type = "auto";  // auto | kvm | qemu
  std::string image = "nrt";
  std::string kernel, initrd;
  std::string cache = "/var/cache/vmlat/guests";
  std::string build_guest;
  int memory_mb = 512;
  int vcpus = 2;
  std::vector<int> vcpu_pin;      // vCPU i on vcpu_pin[i % size]; empty: no <vcpupin>
  std::vector<int> emulator_pin;  // empty: no <emulatorpin>
  std::optional<std::vector<int>> rt_vcpus;  // nullopt: every vCPU but 0 (all when there is one)
  int vcpu_priority = 1;          // SCHED_FIFO priority of rt_vcpus; 0: no <vcpusched>
  bool lock_memory = true;
  bool hugepages = false;
  std::string append;
  bool allow_rt_starvation = false;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(5)};
  // Sampling period of the vCPU threads' host-side evidence; 0: off.
  std::chrono::milliseconds host_evidence{10};
};

Config read_settings(Settings& settings);

// The real-time vCPUs of a transient domain.
std::vector<int> rt_vcpus(const Config& c);

// Why the FIFO vCPUs could take every one of `host_cpus`, or nullopt.
std::optional<std::string> starvation_problem(const Config& c, const std::vector<int>& host_cpus);

// What the transient domain's XML is built from, beside the settings.
struct TransientDomain {
  std::string name, type, kernel, initrd, cmdline;
  std::string channel_path, console_path;
};
// The transient domain's XML: direct kernel boot, the RT tuning as
// cputune/memoryBacking, the agent's channel. Every value is XML-escaped.
std::string transient_domain_xml(const Config& c, const TransientDomain& t);

std::string xml_escape(const std::string& s);

// access = "ssh": where vmlat's ssh goes (the guest, as the plan gives it).
SshTarget ssh_target(const Config& c);

// The QEMU guest agent's virtio-serial port name (libvirt's and qemu-ga's).
inline constexpr const char* kQemuGuestAgentChannel = "org.qemu.guest_agent.0";

}  // namespace vmlat::libvirt
