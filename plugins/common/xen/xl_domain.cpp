#include "xl_domain.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <vmlat/atomic_file.hpp>
#include <vmlat/errors.hpp>
#include <vmlat/text.hpp>

namespace vmlat::xen {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::chrono::milliseconds left_until(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// The last four lines xl printed (libxl's errors are on stderr), or how it ended.
std::string xl_error(const CommandResult& r) {
  std::istringstream in(r.err + "\n" + r.out);
  std::string line, out;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    line = trim(line);
    if (!line.empty() && line.rfind("Parsing config from", 0) != 0) lines.push_back(line);
  }
  for (std::size_t i = lines.size() > 4 ? lines.size() - 4 : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i].substr(0, 300);
  return out.empty() ? r.describe() : out;
}

}  // namespace

std::vector<std::string> parse_xl_list(const std::string& text) {
  std::vector<std::string> names;
  std::istringstream in(text);
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {  // "Name   ID   Mem VCPUs State Time(s)"
      header = false;
      if (line.rfind("Name", 0) == 0) continue;
    }
    std::istringstream words(line);
    std::string name;
    if (words >> name) names.push_back(name);
  }
  return names;
}

std::vector<std::string> list_domains(Executor& dom0) {
  auto r = dom0.run(Command{{"xl", "list"}, 60s});
  if (!r.ok()) throw InfraError("xl list on " + dom0.name() + " failed: " + xl_error(r));
  return parse_xl_list(r.out);
}

json parse_xl_info(const std::string& text) {
  json facts = json::object();
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key.empty() || key.find(' ') != std::string::npos) continue;
    facts[key] = trim(line.substr(colon + 1));
  }
  if (!facts.contains("xen_version") && facts.contains("xen_major") && facts.contains("xen_minor"))
    facts["xen_version"] = facts["xen_major"].get<std::string>() + "." + facts["xen_minor"].get<std::string>() +
                           facts.value("xen_extra", std::string());
  return facts;
}

json xl_info_facts(Executor& dom0) {
  auto r = dom0.run(Command{{"xl", "info"}, 60s});
  if (!r.ok()) throw InfraError("xl info on " + dom0.name() + " failed: " + xl_error(r));
  return parse_xl_info(r.out);
}

int open_console_pty(const std::string& tty) {
  // xenstore's value, but it still names the file we open: only a pty.
  if (tty.rfind("/dev/pts/", 0) != 0 || tty.find_first_not_of("0123456789", 9) != std::string::npos ||
      tty.size() == 9)
    throw InfraError("xen: the domain's console is \"" + tty + "\", not a /dev/pts/N pty");
  const int fd = ::open(tty.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw InfraError("xen: cannot open the domain's console " + tty + ": " + std::strerror(errno));
  // xenconsoled makes the pty raw; make sure, since a cooked tty would echo
  // our frames back to the guest and turn "\n" into "\r\n".
  termios t{};
  if (::tcgetattr(fd, &t) == 0) {
    ::cfmakeraw(&t);
    ::tcsetattr(fd, TCSANOW, &t);
  }
  return fd;
}

XlDomain::XlDomain(Executor& dom0, DomainSpec spec, fs::path work_dir)
    : dom0_(dom0), spec_(std::move(spec)), config_(render_xl_config(spec_)) {
  fs::create_directories(work_dir);
  config_path_ = work_dir / (spec_.name + ".cfg");
  write_file_atomic(config_path_, config_);
}

XlDomain::~XlDomain() { destroy(); }

json XlDomain::dry_run() {
  auto r = dom0_.run(Command{{"xl", "-N", "create", config_path_.string()}, 60s});
  if (!r.ok()) throw InfraError("xl -N create " + config_path_.string() + " refused the config: " + xl_error(r));
  // xl prints the libxl domain configuration as JSON (after "Parsing config").
  const auto brace = r.out.find('{');
  if (brace == std::string::npos) throw InfraError("xl -N create printed no JSON: " + xl_error(r));
  try {
    return json::parse(r.out.substr(brace));
  } catch (const std::exception& e) {
    throw InfraError(std::string("xl -N create printed unparsable JSON: ") + e.what());
  }
}

void XlDomain::create(Deadline deadline) {
  const auto t0 = Clock::now();
  created_ = true;  // from here on, destroy() has something to look for
  auto r = dom0_.run(Command{{"xl", "create", config_path_.string()}, left_until(deadline)});
  if (!r.ok()) throw InfraError("xen: xl create of " + to_string(spec_.type) + " domain " + spec_.name +
                                " failed: " + xl_error(r));
  create_s_ = std::chrono::duration<double>(Clock::now() - t0).count();
  auto id = dom0_.run(Command{{"xl", "domid", spec_.name}, 30s});
  try {
    domid_ = std::stoi(trim(id.out));
  } catch (const std::exception&) {
    throw InfraError("xen: xl domid " + spec_.name + " after xl create: " + xl_error(id));
  }
  const std::string key = "/local/domain/" + std::to_string(domid_) + "/console/tty";
  for (;;) {
    auto tty = dom0_.run(Command{{"xenstore-read", key}, 30s});
    if (tty.ok() && !trim(tty.out).empty()) {
      tty_ = trim(tty.out);
      return;
    }
    if (Clock::now() >= deadline)
      throw InfraError("xen: domain " + spec_.name + " has no console pty in xenstore (" + key +
                       ") after xl create: is xenconsoled running in Dom0?");
    interruptible_sleep(50ms);
  }
}

std::unique_ptr<kvm::GuestExecutor> XlDomain::connect_agent(const fs::path& console_log) {
  if (tty_.empty()) throw InfraError("xen: connect_agent before create");
  const int fd = open_console_pty(tty_);
  auto log = std::make_shared<std::ofstream>(console_log, std::ios::binary | std::ios::app);
  kvm::ChannelOptions options{[log](std::string_view text) {
    log->write(text.data(), static_cast<std::streamsize>(text.size()));
    log->flush();
  }};
  return std::make_unique<kvm::GuestExecutor>(std::make_unique<kvm::GuestChannel>(fd, std::move(options)),
                                              "domU " + spec_.name);
}

json XlDomain::destroy(bool known_gone) noexcept {
  json what = json::object();
  if (!created_ || destroyed_) return what;
  try {
    PhaseScope cleanup("xen-destroy", Clock::now() + 60s, /*interruptible=*/false);
    bool listed = false;
    if (!known_gone)
      for (const auto& n : list_domains(dom0_)) listed = listed || n == spec_.name;
    bool still = false;
    if (listed) {
      auto r = dom0_.run(Command{{"xl", "destroy", spec_.name}, 45s});
      what["xl_destroy"] = r.ok() ? json("ok") : json(xl_error(r));
      for (const auto& n : list_domains(dom0_)) still = still || n == spec_.name;
    } else {
      what["xl_destroy"] = "not needed (the domain was gone)";
    }
    what["gone"] = !still;
    destroyed_ = !still;
  } catch (const std::exception& e) {
    what["error"] = e.what();
  } catch (...) {
    what["error"] = "unknown error";
  }
  return what;
}

}  // namespace vmlat::xen
