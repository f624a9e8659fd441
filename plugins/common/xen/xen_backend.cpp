#include "xen_backend.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include <vmlat/cpus.hpp>
#include <vmlat/local.hpp>
#include <vmlat/text.hpp>

#include "guest_image_settings.hpp"
#include <vmlat/units.hpp>

#include "qmp.hpp"

namespace vmlat::xen {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {


// The last `n` non-empty lines of a file, for error messages.
std::string tail_of_text(const std::string& text, std::size_t n) {
  std::istringstream in(text);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!trim(line).empty()) lines.push_back(trim(line).substr(0, 200));
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i];
  return out.empty() ? "(empty)" : out;
}

std::string tail_of(const fs::path& p, std::size_t n) { return tail_of_text(slurp(p), n); }

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool listed(Executor& dom0, const std::string& name) {
  for (const auto& n : list_domains(dom0))
    if (n == name) return true;
  return false;
}

std::string first_lines(const CommandResult& r) {
  std::string text = trim(r.err.empty() ? r.out : r.err);
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text.empty() ? r.describe() : text;
}

// The facts of `xl info` a cell records (the rest is in the artifact).
json xen_facts(const json& info) {
  json out = json::object();
  for (const char* key : {"host", "release", "xen_version", "xen_scheduler", "xen_commandline", "nr_cpus",
                          "virt_caps", "free_memory", "total_memory", "xen_caps", "cc_compiler"})
    out[key] = info.contains(key) ? info[key] : json(nullptr);
  return out;
}

}  // namespace

XenSettings read_xen_settings(Settings& s, DomainType type) {
  XenSettings c;
  const kvm::GuestImageSettings image = kvm::read_guest_image_settings(s);
  c.image = image.image;
  c.kernel = image.kernel;
  c.initrd = image.initrd;
  for (const auto* p : {&c.kernel, &c.initrd})
    if (!p->empty() && (p->front() != '/' || p->find(',') != std::string::npos))
      s.error(p == &c.kernel ? "kernel" : "initrd", std::string(p == &c.kernel ? "kernel" : "initrd") + " must be an absolute path in Dom0 without commas, not \"" + *p + "\"");
  c.cache = s.string("cache", c.cache);
  if (c.cache.empty() || c.cache.front() != '/') s.error("cache", "an absolute path in Dom0");
  c.memory_mb = static_cast<int>(s.integer("memory_mb", 256, 32, 1 << 20));
  c.vcpus = static_cast<int>(s.integer("vcpus", 1, 1, 128));
  c.vcpu_pin = s.cpu_list("vcpu_pin", {});
  if (static_cast<int>(c.vcpu_pin.size()) > c.vcpus)
    s.error("vcpu_pin", "vcpu_pin lists " + std::to_string(c.vcpu_pin.size()) + " CPUs for " +
                            std::to_string(c.vcpus) + " vCPUs: vCPU i runs on the i-th CPU, list at most one per vCPU");
  // Every scheduler the xen_host role can boot Xen with (xen_host_scheduler):
  // the cell only checks the name against xl info.
  c.scheduler = s.choice("scheduler", "", {"", "credit", "credit2", "null", "rtds"});
  c.credit2_weight = static_cast<int>(s.integer("credit2_weight", 0, 0, 65535));
  c.credit2_cap = static_cast<int>(s.integer("credit2_cap", -1, -1, 100 * 128));
  if ((s.has("credit2_weight") || s.has("credit2_cap")) && c.scheduler != "credit2")
    s.error(s.has("credit2_weight") ? "credit2_weight" : "credit2_cap",
            "credit2_weight and credit2_cap need scheduler = \"credit2\" (they are xl sched-credit2 parameters)");
  c.append = s.string("append", "");
  for (char ch : c.append)
    if (static_cast<unsigned char>(ch) < 0x20) s.error("append", "the guest command line holds a control character");
  c.shutdown_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      s.duration("shutdown_timeout", 10s, 0s, std::chrono::minutes(5)));
  if (type == DomainType::hvm) {
    c.dm_priority = static_cast<int>(s.integer("dm_priority", 0, 0, 99));
    c.dm_pin = s.cpu_list("dm_pin", {});
  }
  if (type == DomainType::pv) {
    c.allow_rt_pv = s.boolean("allow_rt_pv", false);
  }
  return c;
}

std::string domain_name_for(const std::string& cell_id, long pid) {
  std::string id;
  for (char ch : cell_id) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '.' || ch == '-';
    id += ok ? ch : '-';
  }
  const std::string tail = "-" + std::to_string(pid);
  const std::size_t room = 63 - std::string("vmlat-").size() - tail.size();
  if (id.size() > room) id = id.substr(0, room);
  return "vmlat-" + id + tail;
}

std::optional<long> pid_of_domain_name(const std::string& name) {
  if (name.rfind("vmlat-", 0) != 0) return std::nullopt;
  const auto dash = name.rfind('-');
  const std::string digits = name.substr(dash + 1);
  if (dash < 6 || digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stol(digits);
}

std::vector<std::pair<int, std::string>> parse_vcpu_list(const std::string& text) {
  // Name  ID  VCPU  CPU State  Time(s)  Affinity (Hard / Soft)
  // vm     3     0    1   -b-     1.2  1 / all
  std::vector<std::pair<int, std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string name, id, vcpu, cpu, state, time, hard;
    if (!(w >> name >> id >> vcpu >> cpu >> state >> time >> hard)) continue;
    if (vcpu.find_first_not_of("0123456789") != std::string::npos) continue;  // the header
    rows.emplace_back(std::stoi(vcpu), hard);
  }
  return rows;
}

long find_device_model(int domid, const fs::path& proc) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(proc, ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = slurp(e.path() / "cmdline");
    std::vector<std::string> args;
    std::string::size_type start = 0;
    for (auto nul = cmdline.find('\0'); nul != std::string::npos; nul = cmdline.find('\0', start)) {
      args.push_back(cmdline.substr(start, nul - start));
      start = nul + 1;
    }
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "-xen-domid" && args[i + 1] == std::to_string(domid)) return std::stol(pid);
  }
  return -1;
}

XenBackend::~XenBackend() {
  // Belt and braces: teardown() is the path; this is for an exception
  // between them that never reached it.
  agent_.reset();
  domain_.reset();
}

void XenBackend::configure(Settings& settings) { config_ = read_xen_settings(settings, type_); }

void XenBackend::prepare(CellContext& ctx) {
  facts_ = json::object();
  facts_["type"] = to_string(type_);
  work_ = ctx.work_dir() / prefix();
  fs::create_directories(work_);
  dom0_ = make_local_executor(work_ / "dom0", "dom0");
  if (!dom0_->find_program("xl"))
    throw InfraError(prefix() + ": xl not found on " + ctx.cell().host_name +
                     ": this backend runs in a Xen Dom0 (a host tagged \"xen\" with the xen-utils)");
  // `xl list` for destroy_stale runs alongside `xl info` (each costs ~0.1 s
  // in a TCG Dom0).
  auto listing = dom0_->start(Command{{"xl", "list"}, 60s});
  json info;
  {
    auto r = dom0_->run(Command{{"xl", "info"}, 60s});
    if (!r.ok())
      throw InfraError(prefix() + ": xl info failed on " + ctx.cell().host_name + " (is this a Xen Dom0 with "
                       "xenstored running?): " + first_lines(r));
    ctx.save_artifact("xl-info.txt", r.out);
    info = parse_xl_info(r.out);
  }
  facts_["xen"] = xen_facts(info);
  const std::string sched = info.value("xen_scheduler", std::string());
  if (!config_.scheduler.empty() && sched != config_.scheduler)
    throw InfraError(prefix() + ": the plan asks for Xen's " + config_.scheduler + " scheduler, this host runs " +
                     (sched.empty() ? "an unknown one" : sched) + " (a boot option of Xen: sched=" +
                     config_.scheduler + " on Xen's command line, e.g. the xen_host role's xen_host_scheduler)");
  if (type_ != DomainType::pv && info.value("virt_caps", std::string()).find("hvm") == std::string::npos)
    throw InfraError(prefix() + ": this Xen host cannot run " + to_string(type_) + " domains (virt_caps \"" +
                     info.value("virt_caps", std::string()) + "\" has no hvm: no VT-x/AMD-V, or no HAP)");
  int nr_cpus = 0;
  try {
    nr_cpus = std::stoi(info.value("nr_cpus", std::string("0")));
  } catch (...) {
  }
  for (const auto* list : {&config_.vcpu_pin, &config_.dm_pin})
    for (int cpu : *list) {
      if (list == &config_.vcpu_pin && nr_cpus > 0 && cpu >= nr_cpus)
        throw InfraError(prefix() + ": vcpu_pin names physical CPU " + std::to_string(cpu) + ", this Xen host has " +
                         std::to_string(nr_cpus) + " (xl info nr_cpus)");
      if (list == &config_.dm_pin && cpu >= static_cast<int>(::sysconf(_SC_NPROCESSORS_CONF)))
        throw InfraError(prefix() + ": dm_pin names Dom0 CPU " + std::to_string(cpu) + ", which Dom0 does not have");
    }
  while (listing->running()) interruptible_sleep(10ms);
  auto listed_now = listing->stop(0ms);
  if (!listed_now.ok())
    throw InfraError(prefix() + ": xl list on " + ctx.cell().host_name + " failed: " + first_lines(listed_now));
  destroy_stale(ctx, parse_xl_list(listed_now.out));
  resolve_image(ctx);
}

void XenBackend::destroy_stale(CellContext& ctx, const std::vector<std::string>& domains) {
  // A domain of a vmlat that died without its teardown (SIGKILL, power
  // loss of the controller's ssh): its pid is gone, nobody owns it.
  for (const auto& name : domains) {
    auto pid = pid_of_domain_name(name);
    if (!pid || *pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno != ESRCH) continue;
    auto r = dom0_->run(Command{{"xl", "destroy", name}, 45s});
    ctx.log().warn(prefix() + ": destroyed stale domain " + name + " (its vmlat, pid " + std::to_string(*pid) +
                   ", is gone)" + (r.ok() ? "" : ": " + first_lines(r)));
    facts_["stale_destroyed"].push_back(name);
  }
}

void XenBackend::resolve_image(CellContext& ctx) {
  cmdline_extra_.clear();
  if (auto slop = ctx.cell().axis("xen_timer_slop")) {
    if (slop->empty() || slop->size() > 12 || slop->find_first_not_of("0123456789") != std::string::npos)
      throw InfraError(prefix() + ": the xen_timer_slop axis is \"" + *slop + "\", not a number of nanoseconds");
    cmdline_extra_ = "xen_timer_slop=" + *slop;
    facts_["xen_timer_slop_ns"] = std::stoll(*slop);
  }
  if (!config_.kernel.empty()) {
    if (auto axis = ctx.cell().axis("guest_kernel"))
      throw InfraError(prefix() + ": the cell's guest_kernel axis says \"" + *axis + "\" but this backend boots the "
                       "plan's own kernel " + config_.kernel + ": drop the axis or the kernel/initrd settings");
    for (const auto& p : {config_.kernel, config_.initrd})
      if (!fs::is_regular_file(p)) throw InfraError(prefix() + ": " + p + " does not exist in Dom0 or is not a file");
    kernel_ = config_.kernel;
    ramdisk_ = config_.initrd;
    facts_["image"] = json{{"source", "user"}, {"kernel", kernel_}, {"initrd", ramdisk_}};
    return;
  }
  std::string flavour = config_.image;
  if (auto axis = ctx.cell().axis("guest_kernel")) flavour = *axis;
  if (flavour != "nrt" && flavour != "rt")
    throw InfraError(prefix() + ": guest kernel \"" + flavour + "\" is not a build-guest flavour (\"nrt\" or \"rt\"); "
                     "set kernel + initrd for your own");
  if (type_ == DomainType::pv && flavour == "rt" && !config_.allow_rt_pv)
    throw InfraError("xen-pv: the PREEMPT_RT guest kernel hangs as a PV domU (seen with Debian 12's 6.1 rt kernel, "
                     "inside cyclictest); run it as xen-pvh, or set allow_rt_pv = true to try anyway");
  const fs::path dir = fs::path(config_.cache) / flavour;
  // PV and PVH load the kernel ELF (libxc would decompress a bzImage for
  // seconds of TCG time); HVM boots the bzImage through the device model.
  const fs::path elf = dir / "vmlinux", bz = dir / "vmlinuz";
  kernel_ = (type_ != DomainType::hvm && fs::is_regular_file(elf) ? elf : bz).string();
  ramdisk_ = (dir / "initramfs.img").string();
  for (const auto& p : {kernel_, ramdisk_})
    if (!fs::is_regular_file(p))
      throw InfraError(prefix() + ": the " + flavour + " guest image is not in " + dir.string() + " (" + p +
                       " missing): a Xen host gets it from the guest_images role, the lab from build-lab --guest " +
                       flavour);
  json image{{"source", "build-guest"}, {"flavour", flavour}, {"dir", fs::weakly_canonical(dir).string()},
             {"kernel", kernel_}, {"initrd", ramdisk_}};
  try {
    const json guest = json::parse(slurp(dir / "guest.json"));
    image["hash"] = guest.value("hash", json(nullptr));
    if (guest.contains("kernel") && guest["kernel"].is_object()) {
      image["kernel_release"] = guest["kernel"].value("release", json(nullptr));
      image["kernel_preempt"] = guest["kernel"].value("preempt", json(nullptr));
    }
  } catch (...) {
    image["hash"] = nullptr;
  }
  facts_["image"] = image;
}

void XenBackend::boot(CellContext& ctx) {
  DomainSpec spec;
  spec.name = domain_name_for(ctx.cell().id, ::getpid());
  spec.type = type_;
  spec.kernel = kernel_;
  spec.ramdisk = ramdisk_;
  spec.memory_mb = config_.memory_mb;
  spec.vcpus = config_.vcpus;
  // The agent's channel is the first PV console (hvc0) for all three types.
  // PV/PVH print the kernel's console there too: /init lowers the console
  // log level before the agent starts (vmlat.printk=1). HVM's kernel
  // console is the emulated serial port, kept in a file.
  spec.cmdline = type_ == DomainType::hvm ? "console=ttyS0 panic=-1 quiet vmlat.port=/dev/hvc0"
                                          : "console=hvc0 panic=-1 quiet vmlat.port=/dev/hvc0 vmlat.printk=1";
  if (!cmdline_extra_.empty()) spec.cmdline += " " + cmdline_extra_;
  if (!config_.append.empty()) spec.cmdline += " " + config_.append;
  const fs::path console_log = work_ / "console.log";
  if (type_ == DomainType::hvm) {
    spec.hvm_serial = "file:" + (work_ / "serial.log").string();
    spec.device_model_args = {"-name", spec.name + ",debug-threads=on"};
  }
  domain_ = std::make_unique<XlDomain>(*dom0_, spec, work_);
  ctx.save_artifact("xl.cfg", domain_->config_text());
  facts_["domain"] = json{{"name", spec.name}, {"memory_mb", spec.memory_mb}, {"vcpus", spec.vcpus},
                          {"cmdline", spec.cmdline}, {"kernel", spec.kernel}, {"ramdisk", spec.ramdisk}};
  ctx.log().info(prefix() + ": xl create " + spec.name + " (" + std::to_string(spec.vcpus) + " vCPU, " +
                 std::to_string(spec.memory_mb) + " MiB)");
  const auto t0 = Clock::now();
  try {
    domain_->create(current_deadline());
    facts_["domain"]["domid"] = domain_->domid();
    agent_ = domain_->connect_agent(console_log);
    const json hello = agent_->wait_hello(current_deadline());
    facts_["boot"] = json{{"xl_create_s", domain_->create_seconds()}, {"create_to_hello_s", since(t0)},
                          {"guest_boot_ns", hello.value("boot_ns", json(nullptr))}};
    facts_["guest"] = json{{"hello", hello}};
    ctx.log().info(prefix() + ": guest agent up " + std::to_string(since(t0)) + "s after xl create (kernel " +
                   hello.value("kernel_release", std::string("?")) + ")");
  } catch (const PhaseTimeout&) {
    throw PhaseTimeout(prefix() + ": the domU did not come up within the boot timeout (" +
                       std::to_string(static_cast<int>(since(t0))) + "s after xl create, no hello from the agent); "
                       "console.log ends with: " + tail_of(console_log, 3) +
                       (type_ == DomainType::hvm ? "; serial.log: " + tail_of(work_ / "serial.log", 3) : ""));
  }
  // The xl read-backs run in Dom0 while the guest's facts are collected
  // through the agent (under TCG each costs a few hundred ms).
  auto finish = [](std::unique_ptr<Job>& job) {
    while (job->running()) interruptible_sleep(20ms);
    return job->stop(0ms);
  };
  auto libxl_config = dom0_->start(Command{{"xl", "list", "-l", spec.name}, 60s});
  apply_vcpu_pins();
  auto vcpu_list = dom0_->start(Command{{"xl", "vcpu-list", spec.name}, 60s});
  set_credit2(ctx);
  if (type_ == DomainType::hvm) tune_device_model(ctx);
  facts_["guest"]["system"] = collect_system_facts(*agent_);
  check_vcpu_pins(finish(vcpu_list));
  auto l = finish(libxl_config);
  if (l.ok()) ctx.save_artifact("xl-list-l.json", l.out);
}

void XenBackend::apply_vcpu_pins() {
  const std::string& name = domain_->spec().name;
  for (std::size_t i = 0; i < config_.vcpu_pin.size(); ++i) {
    const std::string cpu = std::to_string(config_.vcpu_pin[i]);
    auto r = dom0_->run(Command{{"xl", "vcpu-pin", name, std::to_string(i), cpu}, 60s});
    if (!r.ok()) throw InfraError(prefix() + ": xl vcpu-pin " + name + " " + std::to_string(i) + " " + cpu +
                                  " failed: " + first_lines(r));
  }
}

void XenBackend::check_vcpu_pins(const CommandResult& vcpu_list) {
  // Read back always: the affinity the probe ran with is a fact of the cell.
  const std::string& name = domain_->spec().name;
  if (!vcpu_list.ok()) throw InfraError(prefix() + ": xl vcpu-list " + name + " failed: " + first_lines(vcpu_list));
  json read = json::object();
  for (const auto& [vcpu, hard] : parse_vcpu_list(vcpu_list.out)) read[std::to_string(vcpu)] = hard;
  facts_["tuning"]["vcpu_pin"] = json{{"requested", config_.vcpu_pin}, {"hard_affinity", read}};
  for (std::size_t i = 0; i < config_.vcpu_pin.size(); ++i) {
    const std::string want = std::to_string(config_.vcpu_pin[i]);
    const std::string got = read.value(std::to_string(i), std::string("(no row)"));
    if (got != want)
      throw InfraError(prefix() + ": vCPU " + std::to_string(i) + " of " + name + " reads back hard affinity " + got +
                       " after xl vcpu-pin, not " + want);
  }
}

void XenBackend::set_credit2(CellContext& ctx) {
  if (config_.scheduler != "credit2") return;
  const std::string& name = domain_->spec().name;
  std::vector<std::string> argv{"xl", "sched-credit2", "-d", name};
  if (config_.credit2_weight > 0) argv.insert(argv.end(), {"-w", std::to_string(config_.credit2_weight)});
  if (config_.credit2_cap >= 0) argv.insert(argv.end(), {"-c", std::to_string(config_.credit2_cap)});
  if (argv.size() > 4) {
    auto r = dom0_->run(Command{argv, 60s});
    if (!r.ok()) throw InfraError(prefix() + ": xl sched-credit2 failed: " + first_lines(r));
  }
  auto r = dom0_->run(Command{{"xl", "sched-credit2", "-d", name}, 60s});
  if (!r.ok()) throw InfraError(prefix() + ": xl sched-credit2 -d " + name + " failed: " + first_lines(r));
  // Name  ID Weight  Cap
  std::istringstream in(r.out);
  std::string line;
  json got = json::object();
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string n, id, weight, cap;
    if (w >> n >> id >> weight >> cap && n == name) got = json{{"weight", std::stoi(weight)}, {"cap", std::stoi(cap)}};
  }
  facts_["tuning"]["credit2"] = got;
  if ((config_.credit2_weight > 0 && got.value("weight", -1) != config_.credit2_weight) ||
      (config_.credit2_cap >= 0 && got.value("cap", -1) != config_.credit2_cap))
    throw InfraError(prefix() + ": xl sched-credit2 reads back " + got.dump() + " for " + name + ", not weight " +
                     std::to_string(config_.credit2_weight) + " cap " + std::to_string(config_.credit2_cap));
  (void)ctx;
}

void XenBackend::tune_device_model(CellContext& ctx) {
  const long pid = find_device_model(domain_->domid());
  if (pid < 0)
    throw InfraError(prefix() + ": no device model (a process with -xen-domid " + std::to_string(domain_->domid()) +
                     ") in Dom0's /proc for " + domain_->spec().name);
  // Under Xen the vCPUs are not device-model threads: every DM thread is an
  // "emulator" thread of the kvm backend's tuning.
  const auto threads = kvm::qemu_threads(static_cast<pid_t>(pid), json::array());
  kvm::TuningRequest request{{}, 0, config_.dm_pin, config_.dm_priority};
  json tuning = kvm::apply_tuning(static_cast<pid_t>(pid), threads, request);
  tuning["pid"] = pid;
  tuning["requested"] = json{{"dm_priority", config_.dm_priority}, {"dm_pin", config_.dm_pin}};
  facts_["tuning"]["device_model"] = tuning;
  const bool asked = config_.dm_priority > 0 || !config_.dm_pin.empty();
  if (asked && !tuning.value("ok", false)) {
    std::string errors;
    for (const auto& e : tuning["errors"]) errors += (errors.empty() ? "" : "; ") + e.get<std::string>();
    throw InfraError(prefix() + ": the device model's threads were not tuned as asked: " + errors);
  }
  ctx.log().info(prefix() + ": device model pid " + std::to_string(pid) + ", " + std::to_string(threads.size()) +
                 " threads" + (asked ? " tuned (dm_priority " + std::to_string(config_.dm_priority) + ")" : ""));
}

Executor& XenBackend::probe_target() {
  if (!agent_) throw InfraError(prefix() + ": the domU is not running (used before boot() or after teardown())");
  return *agent_;
}

Executor& XenBackend::placement(const std::string& where) {
  if (where == "guest") return probe_target();
  if (where == "dom0" || where == "host") {
    if (!dom0_) throw InfraError(prefix() + ": placement \"" + where + "\" used before prepare()");
    return *dom0_;
  }
  throw InfraError("the " + prefix() + " backend has no placement \"" + where + "\": it offers \"guest\" and "
                   "\"dom0\" (\"host\" is the same as \"dom0\")");
}

void XenBackend::teardown(CellContext& ctx) {
  PhaseScope scope("teardown", Clock::now() + config_.shutdown_timeout + 90s, /*interruptible=*/false);
  json how = json::object();
  std::string left;
  if (domain_) {
    const std::string name = domain_->spec().name;
    const auto t0 = Clock::now();
    bool seen_gone = false;  // xl list just said so: destroy() need not ask again
    try {
      // Only an agent that said hello is asked to power off: anything else
      // on the console (a shell, a hung init) must not be fed frames.
      bool bye = false;
      if (agent_ && !agent_->hello().is_null()) bye = agent_->shutdown(Clock::now() + config_.shutdown_timeout);
      how["agent_bye"] = bye;
      agent_.reset();
      // on_poweroff = "destroy": the domain goes by itself shortly after.
      const auto until = Clock::now() + config_.shutdown_timeout;
      while (bye && Clock::now() < until && !seen_gone) {
        seen_gone = !listed(*dom0_, name);
        if (!seen_gone) ::usleep(50 * 1000);
      }
    } catch (const std::exception& e) {
      how["error"] = e.what();
    }
    agent_.reset();
    how.update(domain_->destroy(seen_gone));
    // Gone before we asked it to go (a crash, a guest that powered itself
    // off): Xen's own log says why; keep it with the cell.
    if (!how.value("agent_bye", false) && how.value("xl_destroy", std::string()).rfind("not needed", 0) == 0) {
      how["vanished"] = true;
      try {
        auto r = dom0_->run(Command{{"xl", "dmesg"}, 30s});
        if (r.ok()) {
          ctx.save_artifact("xl-dmesg.txt", r.out);
          ctx.log().warn(prefix() + ": domain " + name + " was gone before the teardown asked it to go; Xen's log "
                         "(xl-dmesg.txt) ends with: " + tail_of_text(r.out, 3));
        }
      } catch (const std::exception&) {
      }
    }
    how["teardown_s"] = since(t0);
    if (domain_->created() && !how.value("gone", false)) left = name;
    domain_.reset();
  }
  agent_.reset();
  facts_["teardown"] = how;
  try {
    for (const char* f : {"console.log", "serial.log"})
      if (fs::exists(work_ / f)) ctx.save_artifact(f, slurp(work_ / f));
    if (facts_.contains("domain")) {
      const std::string name = facts_["domain"].value("name", std::string());
      for (const auto& [log, artifact] : {std::pair{"/var/log/xen/qemu-dm-" + name + ".log", "qemu-dm.log"},
                                          std::pair{"/var/log/xen/console/guest-" + name + ".log", "xenconsole.log"}})
        if (fs::exists(log)) ctx.save_artifact(artifact, slurp(log));
    }
  } catch (...) {
  }
  dom0_.reset();
  if (!left.empty())
    throw InfraError(prefix() + ": domain " + left + " is still in xl list after xl destroy: destroy it by hand (" +
                     how.dump() + ")");
}

}  // namespace vmlat::xen
