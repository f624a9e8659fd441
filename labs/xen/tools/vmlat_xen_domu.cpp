// vmlat-xen-domu: one domU through plugins/common/xen, in Dom0. The Xen lab's
// tests and benchmark use it; the xen-* backends will do the same steps per
// cell (plugins/common/xen/README.md).
//
//   vmlat-xen-domu check [SPEC]            xl -N create of the generated config
//   vmlat-xen-domu run [SPEC] -- ARGV...   create, wait for the agent, run ARGV
//                                          in the domU, shut down, destroy
// SPEC: --type pv|pvh|hvm (default pv), --name NAME, --image DIR (a
// build-guest image: vmlinux or vmlinuz + initramfs.img) or --kernel PATH
// [--ramdisk PATH], --memory-mb N, --vcpus N, --cpus LIST, --append ARGS,
// --boot-timeout-s S (default 180), --command-timeout-s S (default 600),
// --work-dir DIR (default /tmp/vmlat-xen-domu-<pid>: config, console.log).
//
// Prints one JSON document on stdout (config, domid, timings, hello, the
// command's result, teardown). Exit status: 0 the command exited 0; 1 it
// did not; 2 usage; 3 infrastructure (xl, boot timeout, channel); 130 SIGINT
// or SIGTERM. The domain is destroyed on every exit path; `teardown.gone`
// says `xl list` no longer shows it.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <vmlat/cpus.hpp>
#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/local.hpp>
#include <vmlat/text.hpp>

#include "xl_domain.hpp"

using namespace vmlat;
using namespace vmlat::xen;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int kUsage = 2, kInfra = 3, kInterrupted = 130;

const char* const kUsageText =
    "usage: vmlat-xen-domu check|run [--type pv|pvh|hvm] [--name NAME] [--image DIR | --kernel PATH [--ramdisk PATH]]\n"
    "                     [--memory-mb N] [--vcpus N] [--cpus LIST] [--append ARGS] [--boot-timeout-s S]\n"
    "                     [--command-timeout-s S] [--work-dir DIR] [-- ARGV...]\n";

struct Options {
  std::string action;
  DomainSpec spec;
  std::string image, append;
  int boot_timeout_s = 180, command_timeout_s = 600;
  fs::path work_dir;
  std::vector<std::string> argv;
};

int to_int(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    const int n = std::stoi(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw ConfigError(flag + ": \"" + v + "\" is not an integer");
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) throw ConfigError("no action");
  o.action = argv[1];
  if (o.action == "-h" || o.action == "--help") {
    std::cout << kUsageText;
    std::exit(0);
  }
  if (o.action != "check" && o.action != "run") throw ConfigError("unknown action \"" + o.action + "\"");
  o.spec.name = "vmlat-domu-" + std::to_string(::getpid());
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      o.argv.assign(argv + i + 1, argv + argc);
      break;
    }
    if (i + 1 >= argc) throw ConfigError(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--type") o.spec.type = domain_type_from_string(v);
    else if (a == "--name") o.spec.name = v;
    else if (a == "--image") o.image = v;
    else if (a == "--kernel") o.spec.kernel = v;
    else if (a == "--ramdisk") o.spec.ramdisk = v;
    else if (a == "--memory-mb") o.spec.memory_mb = to_int(a, v);
    else if (a == "--vcpus") o.spec.vcpus = to_int(a, v);
    else if (a == "--cpus") o.spec.cpus = parse_cpu_list(v);
    else if (a == "--append") o.append = v;
    else if (a == "--boot-timeout-s") o.boot_timeout_s = to_int(a, v);
    else if (a == "--command-timeout-s") o.command_timeout_s = to_int(a, v);
    else if (a == "--work-dir") o.work_dir = v;
    else throw ConfigError("unknown option " + a);
  }
  if (o.action == "run" && o.argv.empty()) throw ConfigError("run needs a command after --");
  if (!o.image.empty()) {
    // PV and PVH load the kernel ELF directly (libxc would spend seconds of
    // TCG time decompressing a bzImage); HVM boots the bzImage through the
    // device model's linuxboot ROM.
    const fs::path dir = o.image;
    const bool elf = o.spec.type != DomainType::hvm && fs::exists(dir / "vmlinux");
    o.spec.kernel = (dir / (elf ? "vmlinux" : "vmlinuz")).string();
    o.spec.ramdisk = (dir / "initramfs.img").string();
  }
  if (o.spec.kernel.empty()) throw ConfigError("give --image DIR or --kernel PATH");
  if (o.work_dir.empty()) o.work_dir = "/tmp/vmlat-xen-domu-" + std::to_string(::getpid());
  // The agent's channel is the first PV console (hvc0) for all three types.
  // PV/PVH print the kernel's console there too: /init lowers the console
  // log level to 1 before starting the agent (vmlat.printk), so that little
  // but a panic lands between the agent's frames. HVM's kernel console is
  // the emulated serial port, kept in a file.
  std::string cmdline = o.spec.type == DomainType::hvm ? "console=ttyS0 panic=-1 quiet vmlat.port=/dev/hvc0"
                                                       : "console=hvc0 panic=-1 quiet vmlat.port=/dev/hvc0 vmlat.printk=1";
  if (!o.append.empty()) cmdline += " " + o.append;
  o.spec.cmdline = cmdline;
  if (o.spec.type == DomainType::hvm) o.spec.hvm_serial = "file:" + (fs::absolute(o.work_dir) / "serial.log").string();
  return o;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string tail_of(const fs::path& p, std::size_t n) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::vector<std::string> lines;
  std::istringstream ls(text);
  std::string line;
  while (std::getline(ls, line))
    if (!trim(line).empty()) lines.push_back(trim(line).substr(0, 200));
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i];
  return out.empty() ? "(empty)" : out;
}

json result_json(const CommandResult& r) {
  return json{{"exit_code", r.exit_code}, {"signal", r.signal}, {"timed_out", r.timed_out},
              {"interrupted", r.interrupted}, {"stdout", r.out}, {"stderr", r.err}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "vmlat-xen-domu: " << e.what() << "\n" << kUsageText;
    return kUsage;
  }
  install_cancel_handlers();
  const auto t_start = Clock::now();
  json doc{{"domain", {{"name", o.spec.name}, {"type", to_string(o.spec.type)}}}, {"timings", json::object()}};
  int status = 0;
  std::unique_ptr<Executor> dom0;
  std::unique_ptr<XlDomain> domain;
  std::unique_ptr<kvm::GuestExecutor> agent;
  const fs::path console_log = fs::absolute(o.work_dir) / "console.log";
  try {
    dom0 = make_local_executor(o.work_dir / "dom0", "dom0");
    domain = std::make_unique<XlDomain>(*dom0, o.spec, o.work_dir);
    doc["domain"]["config"] = domain->config_text();
    doc["domain"]["config_path"] = domain->config_path().string();
    if (o.action == "check") {
      json parsed = domain->dry_run();
      doc["xl_dry_run"] = parsed;
    } else {
      const auto t_create = Clock::now();
      {
        PhaseScope boot("boot", t_create + std::chrono::seconds(o.boot_timeout_s));
        try {
          domain->create(current_deadline());
          doc["domain"]["domid"] = domain->domid();
          doc["domain"]["console_tty"] = domain->console_tty();
          doc["timings"]["xl_create_s"] = domain->create_seconds();
          std::cerr << "vmlat-xen-domu: " << o.spec.name << " created (domid " << domain->domid() << ", "
                    << domain->create_seconds() << "s), waiting for the agent on " << domain->console_tty()
                    << std::endl;
          agent = domain->connect_agent(console_log);
          doc["hello"] = agent->wait_hello(current_deadline());
        } catch (const PhaseTimeout&) {
          throw InfraError("the domU did not come up within " + std::to_string(o.boot_timeout_s) +
                           "s (no hello from the agent); console.log ends with: " + tail_of(console_log, 3) +
                           (o.spec.type == DomainType::hvm ? "; serial.log: " + tail_of(o.work_dir / "serial.log", 3)
                                                           : std::string()));
        }
      }
      doc["timings"]["create_to_hello_s"] = since(t_create);
      std::cerr << "vmlat-xen-domu: agent up after " << since(t_create) << "s; running " << o.argv.front()
                << std::endl;
      const auto t_cmd = Clock::now();
      Command command{o.argv, std::chrono::seconds(o.command_timeout_s)};
      command.graceful_interrupt = true;
      CommandResult r = agent->run(command);
      doc["timings"]["command_s"] = since(t_cmd);
      doc["result"] = result_json(r);
      status = r.interrupted ? kInterrupted : r.ok() ? 0 : 1;
    }
  } catch (const Cancelled&) {
    doc["error"] = "interrupted";
    status = kInterrupted;
  } catch (const ConfigError& e) {
    doc["error"] = e.what();
    std::cerr << "vmlat-xen-domu: " << e.what() << "\n";
    status = kUsage;
  } catch (const std::exception& e) {
    doc["error"] = e.what();
    std::cerr << "vmlat-xen-domu: " << e.what() << "\n";
    status = kInfra;
  }
  // Teardown, whatever happened: the agent powers the guest off (the domain
  // is then destroyed by on_poweroff), xl destroy makes sure.
  {
    PhaseScope teardown("teardown", Clock::now() + 60s, /*interruptible=*/false);
    const auto t_down = Clock::now();
    json how = json::object();
    // Only an agent that said hello is asked to shut down: anything else on
    // the console (a shell, a hung init) must not be fed frames.
    if (agent && !agent->hello().is_null()) how["agent_bye"] = agent->shutdown(Clock::now() + 10s);
    agent.reset();
    if (domain) {
      // Give the powered-off domain a moment to disappear by itself.
      for (int i = 0; i < 40 && how.value("agent_bye", false); ++i) {
        bool listed = false;
        try {
          for (const auto& n : list_domains(*dom0)) listed = listed || n == o.spec.name;
        } catch (...) {
          break;
        }
        if (!listed) break;
        ::usleep(100 * 1000);
      }
      how.update(domain->destroy());
      if (!how.value("gone", true) && status == 0) status = kInfra;
    }
    doc["teardown"] = how;
    doc["timings"]["teardown_s"] = since(t_down);
  }
  doc["timings"]["total_s"] = since(t_start);
  if (fs::exists(console_log)) doc["console_log"] = console_log.string();
  std::cout << doc.dump(1) << std::endl;
  return status;
}
