#include "libvirt_settings.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include <vmlat/cpus.hpp>
#include <vmlat/ssh.hpp>

#include "guest_image_settings.hpp"

namespace vmlat::libvirt {

using namespace std::chrono_literals;

namespace {

std::string cpus_text(const std::vector<int>& v) { return format_cpu_list(v); }

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

namespace {

// access = "ssh": where and as whom. Every value reaches ssh's command line:
// validated as the plan's [hosts] are (vmlat/ssh.hpp), and it stands after
// an option or after "--", never where ssh would read it as one.
void read_ssh_settings(Settings& s, Config& c) {
  static const std::vector<std::pair<std::string_view, SshSetting>> keys = {
      {"ssh_address", SshSetting::address},
      {"ssh_user", SshSetting::user},
      {"ssh_identity_file", SshSetting::identity_file},
      {"ssh_known_hosts", SshSetting::known_hosts}};
  for (const auto& [key, kind] : keys) {
    std::string value = s.string(key, key == "ssh_user" ? c.ssh_user : std::string());
    if (!s.has(key)) continue;
    if (c.access != "ssh") s.error(key, std::string(key) + " applies only with access = \"ssh\"");
    else if (auto why = ssh_setting_problem(kind, value)) s.error(key, std::string(key) + " " + *why);
    // Relative paths mean the same to ssh, whatever its working directory.
    if (kind == SshSetting::identity_file || kind == SshSetting::known_hosts)
      value = std::filesystem::absolute(value).lexically_normal().string();
    (key == "ssh_address" ? c.ssh_address
     : key == "ssh_user"  ? c.ssh_user
     : key == "ssh_identity_file" ? c.ssh_identity_file
                                  : c.ssh_known_hosts) = value;
  }
  c.ssh_port = static_cast<int>(s.integer("ssh_port", 22, 1, 65535));
  if (s.has("ssh_port") && c.access != "ssh") s.error("ssh_port", "ssh_port applies only with access = \"ssh\"");
  if (c.access == "ssh" && c.ssh_address.empty())
    s.error("access", "access = \"ssh\" needs ssh_address (the guest's address as this machine reaches it)");
  if (c.access == "ssh" && c.define)
    s.error("access", "access = \"ssh\" measures your own domain (domain = \"NAME\"): vmlat's transient domains have no "
                      "network; use access = \"agent\" or \"guest-exec\" with define = true");
}

}  // namespace

Config read_settings(Settings& s) {
  Config c;
  c.uri = s.string("uri", c.uri);
  if (c.uri.empty()) s.error("uri", "uri is a libvirt connection URI such as \"qemu:///system\"");
  c.domain = s.string("domain", "");
  // Without a domain, vmlat defines one: the defaults measure something.
  c.define = s.boolean("define", c.domain.empty());
  if (c.define == !c.domain.empty())
    s.error("define", c.define ? "define = true excludes domain = \"NAME\": measure your existing domain or a transient one"
                               : "define = false needs domain = \"NAME\" (the existing domain to measure)");
  c.start = s.boolean("start", false);
  c.channel = s.string("channel", c.channel);
  if (c.channel.empty()) s.error("channel", "channel names the virtio-serial port of the vmlat agent");
  c.access = s.choice("access", "agent", {"agent", "guest-exec", "ssh"});
  if (s.has("channel") && c.access != "agent")
    s.error("channel", "channel names the vmlat agent's port: it applies only with access = \"agent\"");
  read_ssh_settings(s, c);
  c.shutdown_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      s.duration("shutdown_timeout", 5s, 0s, std::chrono::minutes(5)));
  {
    const auto every = s.duration("host_evidence", std::chrono::milliseconds(10), 0s, 1s);
    c.host_evidence = std::chrono::duration_cast<std::chrono::milliseconds>(every);
    if (every.count() > 0 && every % std::chrono::milliseconds(1) != 0ns)
      s.error("host_evidence", "host_evidence is whole milliseconds (\"0s\" turns the sampler off)");
  }

  // The transient domain's settings make no sense for the user's domain:
  // vmlat never changes its definition.
  static const std::vector<std::string_view> transient_only = {
      "domain_type", "image",     "kernel",   "initrd",      "cache",      "build_guest",
      "memory_mb",   "vcpus",     "vcpu_pin", "emulator_pin", "rt_vcpus",  "vcpu_priority",
      "lock_memory", "hugepages", "append",   "allow_rt_starvation"};
  if (!c.domain.empty()) {
    for (auto key : transient_only)
      if (s.has(key))
        s.error(key, std::string(key) + " applies only with define = true: vmlat measures domain \"" + c.domain +
                         "\" as it is defined (it never changes a domain's definition)");
  } else if (s.has("start")) {
    s.error("start", "start applies only with domain = \"NAME\" (a transient domain is always started)");
  }
  c.domain_type = s.choice("domain_type", "auto", {"auto", "kvm", "qemu"});
  const auto image = kvm::read_guest_image_settings(s);
  c.image = image.image;
  c.kernel = image.kernel;
  c.initrd = image.initrd;
  c.cache = s.string("cache", c.cache);
  c.build_guest = s.string("build_guest", "");
  c.memory_mb = static_cast<int>(s.integer("memory_mb", 512, 64, 1 << 20));
  c.vcpus = static_cast<int>(s.integer("vcpus", 2, 1, 64));
  c.vcpu_pin = s.cpu_list("vcpu_pin", {});
  c.emulator_pin = s.cpu_list("emulator_pin", {});
  if (s.has("rt_vcpus")) c.rt_vcpus = s.cpu_list("rt_vcpus", {});
  c.vcpu_priority = static_cast<int>(s.integer("vcpu_priority", 1, 0, 99));
  c.lock_memory = s.boolean("lock_memory", true);
  c.hugepages = s.boolean("hugepages", false);
  c.append = s.string("append", "");
  c.allow_rt_starvation = s.boolean("allow_rt_starvation", false);

  if (c.rt_vcpus)
    for (int v : *c.rt_vcpus)
      if (v >= c.vcpus) s.error("rt_vcpus", "rt_vcpus names vCPU " + std::to_string(v) + " of " + std::to_string(c.vcpus));
  if (static_cast<int>(c.vcpu_pin.size()) > c.vcpus)
    s.error("vcpu_pin", "vcpu_pin lists " + std::to_string(c.vcpu_pin.size()) + " host CPUs for " + std::to_string(c.vcpus) +
                            " vCPUs: vCPU i runs on the i-th CPU of the list (round-robin), at most one CPU per vCPU");
  return c;
}

SshTarget ssh_target(const Config& c) {
  return SshTarget{"guest", c.ssh_address, c.ssh_port, c.ssh_user, c.ssh_identity_file, c.ssh_known_hosts, {}};
}

std::vector<int> rt_vcpus(const Config& c) {
  if (c.rt_vcpus) return *c.rt_vcpus;
  std::vector<int> v;
  for (int i = c.vcpus > 1 ? 1 : 0; i < c.vcpus; ++i) v.push_back(i);
  return v;
}

std::optional<std::string> starvation_problem(const Config& c, const std::vector<int>& host_cpus) {
  if (!c.define || c.allow_rt_starvation || c.vcpu_priority <= 0) return std::nullopt;
  const auto rt = rt_vcpus(c);
  if (rt.empty()) return std::nullopt;
  const std::string what = "vcpu_priority = " + std::to_string(c.vcpu_priority) + " runs vCPU(s) " + cpus_text(rt) +
                           " SCHED_FIFO";
  if (c.vcpu_pin.empty()) {
    if (rt.size() >= host_cpus.size())
      return what + " unpinned, on a host with " + std::to_string(host_cpus.size()) +
             " CPUs: a spinning guest would starve the host; pin them (vcpu_pin) to fewer CPUs than the host has";
    return std::nullopt;
  }
  std::set<int> used;
  for (int v : rt) used.insert(c.vcpu_pin[v % c.vcpu_pin.size()]);
  if (std::all_of(host_cpus.begin(), host_cpus.end(), [&](int cpu) { return used.count(cpu) > 0; }))
    return what + " on every host CPU (" + cpus_text(host_cpus) +
           "): a spinning guest would starve the host; leave one host CPU without a FIFO vCPU";
  return std::nullopt;
}

std::string transient_domain_xml(const Config& c, const TransientDomain& t) {
  std::string x;
  x += "<domain type='" + xml_escape(t.type) + "'>\n";
  x += "  <name>" + xml_escape(t.name) + "</name>\n";
  x += "  <memory unit='MiB'>" + std::to_string(c.memory_mb) + "</memory>\n";
  x += "  <memoryBacking>";
  if (c.hugepages) x += "<hugepages/>";
  if (c.lock_memory) x += "<locked/>";
  x += "<nosharepages/></memoryBacking>\n";
  x += "  <vcpu placement='static'>" + std::to_string(c.vcpus) + "</vcpu>\n";
  const auto rt = rt_vcpus(c);
  std::string tune;
  if (!c.vcpu_pin.empty())
    for (int v = 0; v < c.vcpus; ++v)
      tune += "    <vcpupin vcpu='" + std::to_string(v) + "' cpuset='" +
              std::to_string(c.vcpu_pin[static_cast<std::size_t>(v) % c.vcpu_pin.size()]) + "'/>\n";
  if (!c.emulator_pin.empty()) tune += "    <emulatorpin cpuset='" + cpus_text(c.emulator_pin) + "'/>\n";
  if (c.vcpu_priority > 0 && !rt.empty())
    tune += "    <vcpusched vcpus='" + cpus_text(rt) + "' scheduler='fifo' priority='" + std::to_string(c.vcpu_priority) +
            "'/>\n";
  if (!tune.empty()) x += "  <cputune>\n" + tune + "  </cputune>\n";
  x += "  <os>\n    <type arch='x86_64'>hvm</type>\n";
  x += "    <kernel>" + xml_escape(t.kernel) + "</kernel>\n";
  x += "    <initrd>" + xml_escape(t.initrd) + "</initrd>\n";
  x += "    <cmdline>" + xml_escape(t.cmdline) + "</cmdline>\n  </os>\n";
  x += "  <features><acpi/><pmu state='off'/></features>\n";
  // Under KVM the host's CPU (TSC deadline timer included); TCG's default
  // model is kept: QEMU's software APIC offers no TSC deadline timer to ask for.
  if (t.type == "kvm") x += "  <cpu mode='host-passthrough'/>\n";
  x += "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n";
  x += "  <devices>\n";
  x += "    <serial type='file'><source path='" + xml_escape(t.console_path) + "'/><target port='0'/></serial>\n";
  // The channel the probe's access needs: the vmlat agent's at vmlat's path,
  // or the QEMU guest agent's (libvirt picks its socket and connects to it).
  if (c.access == "guest-exec")
    x += "    <channel type='unix'><target type='virtio' name='" + std::string(kQemuGuestAgentChannel) + "'/></channel>\n";
  else
    x += "    <channel type='unix'><source mode='bind' path='" + xml_escape(t.channel_path) +
         "'/><target type='virtio' name='" + xml_escape(c.channel) + "'/></channel>\n";
  x += "    <memballoon model='none'/>\n";
  x += "  </devices>\n</domain>\n";
  return x;
}

}  // namespace vmlat::libvirt
