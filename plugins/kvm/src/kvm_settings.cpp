#include "kvm_settings.hpp"

#include "guest_image_settings.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <vmlat/cpus.hpp>
#include <vmlat/units.hpp>

namespace vmlat::kvm {

using namespace std::chrono_literals;

std::optional<std::string> pins_problem(const Config& c, const std::vector<int>& host_cpus) {
  for (const auto* list : {&c.vcpu_pin, &c.emulator_pin})
    for (int cpu : *list)
      if (std::find(host_cpus.begin(), host_cpus.end(), cpu) == host_cpus.end())
        return std::string(list == &c.vcpu_pin ? "vcpu_pin" : "emulator_pin") + " names host CPU " +
               std::to_string(cpu) + ", which is not online here (online: " + format_cpu_list(host_cpus) + ")";
  return std::nullopt;
}

std::optional<std::string> starvation_problem(const Config& c, const std::vector<int>& host_cpus) {
  if (c.allow_rt_starvation || c.vcpu_priority <= 0) return std::nullopt;
  const std::string what = "vcpu_priority = " + std::to_string(c.vcpu_priority) + " makes every vCPU thread SCHED_FIFO";
  if (c.vcpu_pin.empty()) {
    if (c.vcpus >= static_cast<int>(host_cpus.size()))
      return what + " and the " + std::to_string(c.vcpus) + " unpinned vCPU threads can occupy all " +
             std::to_string(host_cpus.size()) + " host CPUs: a spinning guest would starve the host; pin them "
             "(vcpu_pin) to fewer CPUs than the host has";
    return std::nullopt;
  }
  if (c.vcpus > static_cast<int>(c.vcpu_pin.size())) {
    const int shared = c.vcpu_pin[0];
    return what + " and vcpu_pin makes vCPUs share host CPU " + std::to_string(shared) +
           " (vCPU i runs on the i-th listed CPU, round-robin): a FIFO vCPU spinning on a guest lock held by a "
           "vCPU on the same host CPU never lets it run; give each RT vCPU its own host CPU";
  }
  std::set<int> used(c.vcpu_pin.begin(), c.vcpu_pin.end());
  bool all = true;
  for (int cpu : host_cpus)
    if (!used.count(cpu)) all = false;
  if (all)
    return what + " and vcpu_pin [" + format_cpu_list(c.vcpu_pin) + "] covers every host CPU (" + format_cpu_list(host_cpus) +
           "): a spinning guest would starve the host; leave at least one host CPU without an RT vCPU";
  return std::nullopt;
}

Config read_settings(Settings& s) {
  Config c;
  const GuestImageSettings image = read_guest_image_settings(s);
  c.image = image.image;
  c.kernel = image.kernel;
  c.initrd = image.initrd;
  c.disk = s.string("disk", "");
  c.disk_format = s.choice("disk_format", c.disk_format, {"raw", "qcow2"});
  if (!c.disk.empty() && (!c.kernel.empty() || s.has("image")))
    s.error("disk", "disk (your own disk image) excludes image and kernel/initrd");
  if (c.disk.empty() && s.has("disk_format")) s.error("disk_format", "disk_format applies only with disk");
  c.cache = s.string("cache", c.cache);
  c.build_guest = s.string("build_guest", "");
  c.qemu = s.string("qemu", c.qemu);
  c.accel = s.choice("accel", "auto", {"auto", "kvm", "tcg"});
  c.require_kvm = s.boolean("require_kvm", false);
  if (c.require_kvm && c.accel == "tcg") s.error("require_kvm", "require_kvm = true contradicts accel = \"tcg\"");
  c.memory_mb = static_cast<int>(s.integer("memory_mb", 512, 64, 1 << 20));
  c.vcpus = static_cast<int>(s.integer("vcpus", 2, 1, 64));
  c.cpu_model = s.string("cpu_model", "");
  c.append = s.string("append", "");
  c.extra_args = s.string_list("extra_args", {});
  c.vcpu_pin = s.cpu_list("vcpu_pin", {});
  c.vcpu_priority = static_cast<int>(s.integer("vcpu_priority", 0, 0, 99));
  c.emulator_pin = s.cpu_list("emulator_pin", {});
  c.emulator_priority = static_cast<int>(s.integer("emulator_priority", 0, 0, 99));
  c.allow_rt_starvation = s.boolean("allow_rt_starvation", false);
  c.shutdown_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      s.duration("shutdown_timeout", 5s, 0s, std::chrono::minutes(5)));
  {
    const auto every = s.duration("host_evidence", std::chrono::milliseconds(10), 0s, 1s);
    c.host_evidence = std::chrono::duration_cast<std::chrono::milliseconds>(every);
    if (every.count() > 0 && every % std::chrono::milliseconds(1) != 0ns)
      s.error("host_evidence", "host_evidence is whole milliseconds (\"0s\" turns the sampler off)");
  }

  // Pins naming CPUs this machine does not have are for another host (the
  // seed plan's isolated CPUs): prepare() refuses them on a host without
  // them; the RT rule is judged here whenever this machine is the target.
  const auto host = online_cpus();
  if (!pins_problem(c, host)) {
    if (auto why = starvation_problem(c, host)) s.error("vcpu_priority", *why + " (allow_rt_starvation = true overrides)");
  }
  if (static_cast<int>(c.vcpu_pin.size()) > c.vcpus)
    s.error("vcpu_pin", "vcpu_pin lists " + std::to_string(c.vcpu_pin.size()) + " host CPUs for " +
                            std::to_string(c.vcpus) + " vCPUs: vCPU i runs on the i-th CPU of the list "
                            "(round-robin), so list at most one CPU per vCPU");
  return c;
}

}  // namespace vmlat::kvm
