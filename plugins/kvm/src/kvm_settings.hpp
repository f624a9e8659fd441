// The kvm backend's settings (README.md lists each with type, default, unit)
// and the rule refusing RT vCPU threads that could take every host CPU.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <vmlat/settings.hpp>

namespace vmlat::kvm {

struct Config {
  std::string image = "nrt";  // build-guest flavour when the cell has no guest_kernel axis
  std::string kernel, initrd;  // the user's own image (both or neither)
  std::string disk;            // or the user's own disk image (booted by its bootloader)
  std::string disk_format = "raw";
  std::string cache = "/var/cache/vmlat/guests";
  std::string build_guest;     // path override
  std::string qemu = "qemu-system-x86_64";
  std::string accel = "auto";  // auto | kvm | tcg
  bool require_kvm = false;
  int memory_mb = 512;
  int vcpus = 2;
  std::string cpu_model;       // "": "host" under KVM, QEMU's default under TCG
  std::string append;          // added to the kernel command line
  std::vector<std::string> extra_args;
  std::vector<int> vcpu_pin;   // vCPU i runs on vcpu_pin[i % size] (the list as cpu_list returns it)
  int vcpu_priority = 0;
  std::vector<int> emulator_pin;
  int emulator_priority = 0;
  bool allow_rt_starvation = false;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(5)};
  // Sampling period of the vCPU threads' host-side evidence; 0: off.
  std::chrono::milliseconds host_evidence{10};
};

// Reads and validates every key (errors are recorded in `settings`).
Config read_settings(Settings& settings);

// Why the pins cannot be applied on a host with `host_cpus` online, or nullopt.
std::optional<std::string> pins_problem(const Config& config, const std::vector<int>& host_cpus);

// Why `config` could starve the host (every host CPU given to SCHED_FIFO vCPU
// threads), or nullopt. Ignores allow_rt_starvation's value only when false.
std::optional<std::string> starvation_problem(const Config& config, const std::vector<int>& host_cpus);

}  // namespace vmlat::kvm
