#include "xl_config.hpp"

#include <vmlat/cpus.hpp>

namespace vmlat::xen {

std::string to_string(DomainType type) {
  switch (type) {
    case DomainType::pv: return "pv";
    case DomainType::pvh: return "pvh";
    case DomainType::hvm: return "hvm";
  }
  return "?";
}

DomainType domain_type_from_string(const std::string& text) {
  if (text == "pv") return DomainType::pv;
  if (text == "pvh") return DomainType::pvh;
  if (text == "hvm") return DomainType::hvm;
  throw ConfigError("domain type \"" + text + "\": expected \"pv\", \"pvh\" or \"hvm\"");
}

void check_domain_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    throw ConfigError("domain name \"" + name + "\": must be 1 to 64 characters");
  if (name.front() == '-' || name.front() == '.')
    throw ConfigError("domain name \"" + name + "\": must not start with '-' or '.'");
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) throw ConfigError("domain name \"" + name + "\": only letters, digits, '_', '-' and '.' are allowed");
  }
  // xl reads an all-digit argument as a domain id, not a name.
  if (name.find_first_not_of("0123456789") == std::string::npos)
    throw ConfigError("domain name \"" + name + "\": must not be a number (xl would take it for a domain id)");
}

std::string xl_quote(const std::string& s, const std::string& what) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      throw ConfigError(what + ": control character (code " + std::to_string(u) + ") in \"" + s +
                        "\" (a newline would start another xl setting)");
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

namespace {

void check_path(const std::string& path, const std::string& what) {
  if (path.empty() || path.front() != '/') throw ConfigError(what + ": \"" + path + "\" is not an absolute path");
  // xl's device_model_args and the `serial` spec split nothing, but a comma
  // would split QEMU's -initrd module list for HVM direct boot.
  if (path.find(',') != std::string::npos) throw ConfigError(what + ": \"" + path + "\" contains a comma");
}

}  // namespace

std::string render_xl_config(const DomainSpec& spec) {
  check_domain_name(spec.name);
  check_path(spec.kernel, "kernel");
  if (!spec.ramdisk.empty()) check_path(spec.ramdisk, "ramdisk");
  if (spec.memory_mb < 32 || spec.memory_mb > 1 << 20)
    throw ConfigError("memory_mb " + std::to_string(spec.memory_mb) + ": must be 32..1048576");
  if (spec.vcpus < 1 || spec.vcpus > 128) throw ConfigError("vcpus " + std::to_string(spec.vcpus) + ": must be 1..128");
  for (int cpu : spec.cpus)
    if (cpu < 0) throw ConfigError("cpus: negative CPU number " + std::to_string(cpu));

  std::string cfg;
  auto line = [&](const std::string& key, const std::string& value) { cfg += key + " = " + value + "\n"; };
  line("name", xl_quote(spec.name, "name"));
  line("type", xl_quote(to_string(spec.type), "type"));
  line("kernel", xl_quote(spec.kernel, "kernel"));
  if (!spec.ramdisk.empty()) line("ramdisk", xl_quote(spec.ramdisk, "ramdisk"));
  if (!spec.cmdline.empty()) line("extra", xl_quote(spec.cmdline, "cmdline"));
  line("memory", std::to_string(spec.memory_mb));
  line("vcpus", std::to_string(spec.vcpus));
  if (!spec.cpus.empty()) line("cpus", xl_quote(format_cpu_list(spec.cpus), "cpus"));
  if (spec.type == DomainType::hvm) {
    line("device_model_version", "\"qemu-xen\"");
    // The PV console (hvc0, through xenconsoled) carries the agent, as for PV
    // and PVH; the emulated serial port is the kernel's console.
    if (!spec.hvm_serial.empty()) {
      if (spec.hvm_serial != "pty") {
        if (spec.hvm_serial.rfind("file:", 0) != 0)
          throw ConfigError("hvm serial \"" + spec.hvm_serial + "\": expected \"pty\" or \"file:/path\"");
        check_path(spec.hvm_serial.substr(5), "hvm serial file");
      }
      line("serial", xl_quote(spec.hvm_serial, "hvm serial"));
    }
    line("vnc", "0");
    line("sdl", "0");
    line("nographic", "1");
    line("vga", "\"none\"");
    if (!spec.device_model_args.empty()) {
      std::string list = "[ ";
      for (std::size_t i = 0; i < spec.device_model_args.size(); ++i)
        list += (i ? ", " : "") + xl_quote(spec.device_model_args[i], "device_model_args");
      line("device_model_args", list + " ]");
    }
  }
  // A domain that stops for any reason is gone: nothing restarts behind the
  // cell's back, and `xl list` shows only what is running.
  line("on_poweroff", "\"destroy\"");
  line("on_reboot", "\"destroy\"");
  line("on_crash", "\"destroy\"");
  return cfg;
}

}  // namespace vmlat::xen
