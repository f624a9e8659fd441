// vmlat-lint-domain: the RT lint of one libvirt domain (by name, through
// libvirt) or one domain XML file; what `vmlat lint-domain` runs. Exit codes:
// 0 no error finding (warnings allowed), 1 error findings, 2 usage or a file
// that is not a domain XML, 3 libvirt unreachable or no such domain.
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <vmlat/cpus.hpp>
#include <vmlat/json.hpp>

#include "domain_xml.hpp"
#include "libvirt_client.hpp"
#include "rt_lint.hpp"

using namespace vmlat;
using namespace vmlat::libvirt;

namespace {

constexpr const char* kUsage = R"(usage: vmlat lint-domain NAME|FILE.xml [options]

Checks a libvirt domain against libvirt's "KVM real time" rules (vCPU and
emulator pinning, SCHED_FIFO vCPUs, locked huge-page memory without KSM, no
PMU, the TSC deadline timer, no balloon, a housekeeping vCPU) and against the
host (the real-time vCPUs' CPUs isolated and nohz_full, the emulator on
housekeeping CPUs, pins on CPUs that exist). An argument that names an
existing file, or ends in .xml, is read as domain XML; anything else is a
domain name looked up through --uri (its XML as libvirt returns it: the live
one for a running domain). Nothing is changed. Every rule and its fix:
plugins/common/libvirt/README.md.

exit codes: 0 no error finding (warnings allowed); 1 error findings;
2 bad usage, or a file that is not a domain XML; 3 libvirt unreachable, or
no such domain.

options:
  --uri URI          libvirt connection (default: qemu:///system)
  --format F         text (default) or json
  --no-host          only the rules on the XML, none about the host
  --host-cpus LIST   judge against a host with these CPUs instead of this one
  --isolated LIST    ... whose isolated CPUs (isolcpus=) are LIST ("" none)
  --nohz-full LIST   ... whose nohz_full CPUs are LIST ("" none)
)";

int usage(const std::string& why) {
  std::cerr << "vmlat lint-domain: " << why << "\n(vmlat lint-domain --help shows the usage)\n";
  return 2;
}

bool is_file_argument(const std::string& a) {
  struct stat st{};
  if (::stat(a.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return true;
  return a.size() > 4 && a.compare(a.size() - 4, 4, ".xml") == 0;
}

std::optional<std::vector<int>> cpu_option(const std::string& text, std::string* why) {
  if (text.empty()) return std::vector<int>{};
  try {
    return parse_cpu_list(text);
  } catch (const std::exception& e) {
    *why = e.what();
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, uri = "qemu:///system", format = "text";
  bool no_host = false, options_done = false;
  std::optional<std::string> host_cpus, isolated, nohz;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* opt) -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      (void)opt;
      return args[++i];
    };
    if (!options_done && (a == "-h" || a == "--help")) {
      std::cout << kUsage;
      return 0;
    }
    if (!options_done && a == "--") {
      options_done = true;
      continue;
    }
    if (!options_done && a.size() > 1 && a[0] == '-') {
      std::optional<std::string> v;
      if (a == "--no-host") {
        no_host = true;
        continue;
      }
      if (a != "--uri" && a != "--format" && a != "--host-cpus" && a != "--isolated" && a != "--nohz-full")
        return usage("unknown option '" + a.substr(0, 60) + "'");
      if (!(v = value(a.c_str()))) return usage(a + " needs a value");
      if (a == "--uri") uri = *v;
      else if (a == "--format") format = *v;
      else if (a == "--host-cpus") host_cpus = *v;
      else if (a == "--isolated") isolated = *v;
      else nohz = *v;
      continue;
    }
    if (!target.empty()) return usage("one domain or file at a time");
    target = a;
  }
  if (target.empty()) return usage("missing NAME or FILE.xml");
  if (format != "text" && format != "json") return usage("--format is text or json, not '" + format.substr(0, 40) + "'");
  if (no_host && (host_cpus || isolated || nohz)) return usage("--no-host excludes --host-cpus, --isolated and --nohz-full");

  std::optional<HostView> host;
  if (!no_host) {
    host = read_host_view();
    std::string why;
    auto set = [&](const std::optional<std::string>& text, std::vector<int>& into, const char* opt) {
      if (!text) return true;
      auto cpus = cpu_option(*text, &why);
      if (!cpus) return false;
      into = *cpus;
      host->source = "the host described on the command line";
      why.clear();
      (void)opt;
      return true;
    };
    if (!set(host_cpus, host->cpus, "--host-cpus") || !set(isolated, host->isolated, "--isolated") ||
        !set(nohz, host->nohz_full, "--nohz-full"))
      return usage(why);
  }

  std::string xml, source;
  json where = json::object();
  if (is_file_argument(target)) {
    std::ifstream in(target, std::ios::binary);
    if (!in) return usage("cannot read " + target);
    std::ostringstream ss;
    ss << in.rdbuf();
    xml = ss.str();
    source = target;
    where = json{{"file", target}};
  } else {
    try {
      Connection conn = open_connection(uri, /*read_only=*/true);
      Domain dom = lookup_domain(conn.get(), target);
      if (!dom) {
        std::cerr << "vmlat lint-domain: no domain '" << target << "' at " << uri << "\n";
        return 3;
      }
      xml = domain_xml(dom.get());
    } catch (const LibvirtError& e) {
      std::cerr << "vmlat lint-domain: " << e.what() << "\n";
      return 3;
    }
    source = "domain '" + target + "' at " + uri;
    where = json{{"domain", target}, {"uri", uri}};
  }

  DomainXml d;
  try {
    d = parse_domain_xml(xml);
  } catch (const DomainXmlError& e) {
    std::cerr << "vmlat lint-domain: " << source << ": " << e.what() << "\n";
    return 2;
  }
  const LintReport report = lint_domain(d, host ? &*host : nullptr);
  const json j = lint_json(report, host ? &*host : nullptr);
  const int errors = j["errors"].get<int>();
  if (format == "json") {
    json out = where;
    out["lint"] = j;
    std::cout << dump_json(out, 2) << "\n";
  } else {
    std::cout << source << ": " << report.findings.size() << " finding(s), " << errors << " error(s), "
              << j["warnings"].get<int>() << " warning(s); real-time vCPUs " << format_cpu_list(report.rt_vcpus)
              << (host ? "; host rules against " + host->source : std::string("; host rules not checked")) << "\n";
    for (const auto& f : report.findings) {
      std::cout << (f.severity == "error" ? "error  " : "warning") << "  " << f.rule << "  " << f.path << "\n"
                << "         " << f.message << "\n"
                << "         fix: " << f.fix << "\n";
    }
  }
  return errors > 0 ? 1 : 0;
}
