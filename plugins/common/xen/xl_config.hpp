// xl domain configuration for the Xen backends (xl.cfg(5)): one renderer for
// the three domain types, so that xen-pv, xen-pvh and xen-hvm differ only in
// what they put into a DomainSpec.
//
// Values come from plans and are hostile: a name is [A-Za-z0-9_.-] and does
// not start with '-' (it becomes an argument of `xl destroy`); strings are
// quoted with xl's escapes and may hold no control characters (a newline
// would start a new setting); paths must be absolute.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace vmlat::xen {

enum class DomainType { pv, pvh, hvm };

// "pv", "pvh", "hvm"; from_string throws std::invalid_argument otherwise.
std::string to_string(DomainType type);
DomainType domain_type_from_string(const std::string& text);

struct DomainSpec {
  std::string name;
  DomainType type = DomainType::pv;
  // Direct kernel boot for all three types (HVM: through the device model's
  // -kernel/-initrd/-append, i.e. SeaBIOS + linuxboot).
  std::string kernel;
  std::string ramdisk;
  std::string cmdline;
  int memory_mb = 256;
  int vcpus = 1;
  // Hard affinity of every vCPU (xl `cpus`); empty: Xen's default (all).
  std::vector<int> cpus;
  // HVM: where the emulated serial port (ttyS0) goes: "file:/path", "pty" or
  // "" (none).
  std::string hvm_serial;
  // HVM: extra device model arguments (device_model_args).
  std::vector<std::string> device_model_args;
};

// A bad value; what() names the setting and why.
class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The xl.cfg text for `spec`. Throws ConfigError.
std::string render_xl_config(const DomainSpec& spec);

// `s` as an xl.cfg string literal ("..." with \\ and \" escaped). Throws
// ConfigError (naming `what`) for control characters.
std::string xl_quote(const std::string& s, const std::string& what);

// Throws ConfigError unless `name` is a usable domain name.
void check_domain_name(const std::string& name);

}  // namespace vmlat::xen
