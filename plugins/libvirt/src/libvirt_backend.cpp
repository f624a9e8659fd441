// The libvirt backend: measures a domain through libvirt's C API, either
// the user's existing domain (by name, left as found) or a transient domain
// defined from vmlat's guest images with the RT tuning expressed as XML. The
// probe reaches the guest through the vmlat agent's virtio-serial channel,
// the QEMU guest agent's guest-exec or SSH (`access`); the domain's XML is
// linted against the real-time rules. See README.md.
#include <dirent.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <vmlat/cpus.hpp>
#include <vmlat/local.hpp>
#include <vmlat/plugin.hpp>
#include <vmlat/proc_thread.hpp>
#include <vmlat/process.hpp>
#include <vmlat/ssh.hpp>
#include <vmlat/text.hpp>
#include <vmlat/units.hpp>

#include "domain_xml.hpp"
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "guest_channel.hpp"
#include "guest_exec.hpp"
#include "guest_image_settings.hpp"
#include "host_evidence.hpp"
#include "image_stamps.hpp"
#include "libvirt_client.hpp"
#include "libvirt_settings.hpp"
#include "qmp.hpp"
#include "rt_lint.hpp"

#ifndef VMLAT_LIBVIRT_BUILD_GUEST_SOURCE
#define VMLAT_LIBVIRT_BUILD_GUEST_SOURCE ""
#endif

namespace vmlat::libvirt {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

bool kvm_usable() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  return version == KVM_API_VERSION;
}

const char* state_name(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutting-down";
    case VIR_DOMAIN_SHUTOFF: return "shut-off";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pm-suspended";
    default: return "unknown";
  }
}

// The QEMU process running the domain `uuid`: libvirt passes `-uuid UUID`
// on QEMU's command line. Found through /proc rather than libvirt's pid file
// (which lives in the daemon's run directory, not always visible here) or a
// QEMU monitor command (which taints the user's domain).
pid_t find_qemu_pid(const std::string& uuid) {
  if (uuid.empty()) return 0;
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  pid_t found = 0;
  while (dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    const std::string cmdline = slurp(fs::path("/proc") / e->d_name / "cmdline");
    const std::string needle = std::string("-uuid") + '\0' + uuid + '\0';
    if (cmdline.find(needle) != std::string::npos && cmdline.find("qemu") != std::string::npos) {
      found = static_cast<pid_t>(std::stol(e->d_name));
      break;
    }
  }
  ::closedir(d);
  return found;
}

// QEMU's threads: vCPUs by their name ("CPU 1/KVM", "CPU 1/TCG": libvirt
// turns QEMU's debug-threads on), every other thread an emulator thread.
std::vector<kvm::HostThread> qemu_threads(pid_t pid) {
  std::vector<kvm::HostThread> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path("/proc") / std::to_string(pid) / "task", ec)) {
    kvm::HostThread t;
    t.tid = static_cast<pid_t>(std::stol(e.path().filename().string()));
    t.comm = trim(slurp(e.path() / "comm"));
    int n = -1;
    if (t.comm.rfind("CPU ", 0) == 0 && std::sscanf(t.comm.c_str(), "CPU %d/", &n) == 1) {
      t.role = "vcpu";
      t.vcpu = n;
    } else {
      t.role = "emulator";
    }
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.role != b.role ? a.role == "vcpu" : a.vcpu != b.vcpu ? a.vcpu < b.vcpu : a.tid < b.tid;
  });
  return out;
}

// /proc/PID/task/TID/schedstat: time on the CPU, time waiting on the run
// queue (ns), timeslices.
json schedstat(pid_t pid, pid_t tid) {
  const auto s = read_schedstat("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/");
  if (!s) return nullptr;
  return json{{"run_ns", s->run_ns}, {"wait_ns", s->wait_ns}, {"timeslices", s->timeslices}};
}

// The domain's QEMU guest agent through libvirt. The domain is referenced
// for as long as the function lives (a Job may outlive the backend's handle).
AgentCommand libvirt_agent(virDomainPtr dom) {
  virDomainRef(dom);
  std::shared_ptr<virDomain> held(dom, [](virDomainPtr d) { virDomainFree(d); });
  return [held](const std::string& command, std::chrono::seconds timeout) {
    char* reply = virDomainQemuAgentCommand(held.get(), command.c_str(), static_cast<int>(timeout.count()), 0);
    if (!reply) {
      const std::string message = last_error_message();
      // libvirt's words when qemu-ga itself answered with an error (e.g. a
      // program it could not start), as against an agent not reached.
      const bool replied = message.find("unable to execute QEMU agent command") != std::string::npos;
      throw AgentError(message.empty() ? "unknown libvirt error" : message, replied);
    }
    std::string text(reply);
    std::free(reply);
    return text;
  };
}

class LibvirtBackend final : public Backend {
 public:
  void configure(Settings& settings) override { config_ = read_settings(settings); }

  std::vector<std::string> placements() const override { return {"host", "guest"}; }

  void prepare(CellContext& ctx) override {
    facts_ = json::object();
    host_ = make_local_executor(ctx.work_dir() / "libvirt-host", "host");
    if (auto why = starvation_problem(config_, online_cpus()))
      throw InfraError("libvirt: " + *why + " (set allow_rt_starvation = true to run it anyway)");
    conn_ = open_connection(config_.uri, /*read_only=*/false);
    unsigned long lib = 0, hv = 0;
    json versions{{"uri", config_.uri}};
    if (virConnectGetLibVersion(conn_.get(), &lib) == 0) versions["libvirt"] = version_text(lib);
    if (virConnectGetVersion(conn_.get(), &hv) == 0) versions["hypervisor"] = version_text(hv);
    if (const char* type = virConnectGetType(conn_.get())) versions["driver"] = type;
    unsigned long client = 0;
    if (virGetVersion(&client, nullptr, nullptr) == 0) versions["client_library"] = version_text(client);
    facts_["libvirt"] = versions;
    if (config_.define) {
      resolve_image(ctx);
    } else {
      dom_ = lookup_domain(conn_.get(), config_.domain);
      if (!dom_) throw InfraError("libvirt: no domain \"" + config_.domain + "\" at " + config_.uri);
      int state = 0, reason = 0;
      if (virDomainGetState(dom_.get(), &state, &reason, 0) < 0) throw_last_error("libvirt: reading the domain's state");
      state_before_ = state;
      const int persistent = virDomainIsPersistent(dom_.get());
      if (persistent == 1) inactive_before_ = domain_xml(dom_.get(), VIR_DOMAIN_XML_INACTIVE);
      facts_["domain"] = json{{"mode", "existing"},
                              {"name", config_.domain},
                              {"state_before", state_name(state)},
                              {"persistent", persistent == 1}};
      if (state != VIR_DOMAIN_RUNNING && !config_.start)
        throw InfraError("libvirt: domain \"" + config_.domain + "\" is " + state_name(state) +
                         ": vmlat starts a domain only when told to (start = true), and shuts it down again after");
    }
  }

  void boot(CellContext& ctx) override {
    if (config_.define) define_and_start(ctx);
    else if (state_before_ != VIR_DOMAIN_RUNNING) start_existing(ctx);

    const std::string live = domain_xml(dom_.get());
    facts_["domain"]["xml"] = live;
    char uuid[VIR_UUID_STRING_BUFLEN] = {0};
    if (virDomainGetUUIDString(dom_.get(), uuid) == 0) uuid_ = uuid;
    facts_["domain"]["uuid"] = uuid_;
    DomainXml parsed;
    try {
      parsed = parse_domain_xml(live);
    } catch (const DomainXmlError& e) {
      throw InfraError(std::string("libvirt: the domain's XML as libvirt returned it: ") + e.what());
    }
    const HostView host = read_host_view();
    facts_["lint"] = lint_json(lint_domain(parsed, &host), &host);

    qemu_pid_ = find_qemu_pid(uuid_);
    if (config_.access == "agent") connect_agent(ctx, parsed);
    else if (config_.access == "guest-exec") connect_guest_exec(ctx, parsed);
    else connect_ssh(ctx);

    // The host threads, as the kernel reports them.
    if (qemu_pid_ == 0) qemu_pid_ = find_qemu_pid(uuid_);
    if (qemu_pid_ > 0) {
      threads_ = qemu_threads(qemu_pid_);
      facts_["qemu_pid"] = qemu_pid_;
      facts_["threads"] = thread_facts();
      facts_["qemu_cmdline"] = json::array();
      std::string cmd = slurp(fs::path("/proc") / std::to_string(qemu_pid_) / "cmdline");
      for (std::size_t at = 0; at < cmd.size();) {
        auto end = cmd.find('\0', at);
        if (end == std::string::npos) end = cmd.size();
        facts_["qemu_cmdline"].push_back(cmd.substr(at, end - at));
        at = end + 1;
      }
    } else {
      facts_["threads"] = nullptr;
      ctx.log().warn("libvirt: the domain's QEMU process is not visible from here: no host thread facts");
    }
    facts_["guest"]["system"] = collect_system_facts(guest());
    if (qemu_pid_ > 0 && config_.host_evidence.count() > 0) {
      // The vCPU threads' host-side evidence, sampled until teardown; clock
      // exchanges now and after the measurement map the guest's spikes.
      std::vector<kvm::EvidenceVcpu> vcpus;
      for (const auto& t : threads_)
        if (t.role == "vcpu") vcpus.push_back({t.vcpu, t.tid});
      std::vector<int> pinned;
      for (const auto& [vcpu, cpus] : parsed.vcpupin) pinned.insert(pinned.end(), cpus.begin(), cpus.end());
      evidence_ = std::make_unique<kvm::HostEvidence>(
          qemu_pid_, vcpus, ctx.work_dir() / kvm::kHostEvidenceFile, config_.host_evidence,
          parsed.type == "qemu" ? "tcg" : parsed.type,
          kvm::sampler_cpus(parsed.emulatorpin.value_or(std::vector<int>{}), pinned, online_cpus()));
      for (int i = 0; i < 2; ++i) evidence_->exchange(*host_, guest());
    }
  }

  Executor& probe_target() override { return guest(); }

  Executor& placement(const std::string& where) override {
    if (where == "guest") return guest();
    if (where == "host") {
      if (!host_) throw InfraError("libvirt backend: placement \"host\" used before prepare()");
      return *host_;
    }
    throw InfraError("the libvirt backend has no placement \"" + where + "\": it offers \"host\" and \"guest\"");
  }

  std::vector<int> target_threads() const override {
    std::vector<int> v;
    for (const auto& t : threads_)
      if (t.role == "vcpu") v.push_back(static_cast<int>(t.tid));
    return v;
  }

  // Ends what vmlat started and leaves the rest as found; throws (the cell
  // is then an infrastructure error) only when libvirt was lost meanwhile:
  // vmlat can then no longer vouch for the domain it measured.
  void teardown(CellContext& ctx) override {
    if (evidence_) {
      try {
        if ((guest_ || remote_) && domain_active())
          for (int i = 0; i < 2; ++i) evidence_->exchange(*host_, guest());
        evidence_->stop();
        facts_["host_evidence"] = evidence_->facts();
        ctx.save_artifact(kvm::kHostEvidenceFile, slurp(evidence_->file()));
      } catch (const std::exception& e) {
        ctx.log().warn(std::string("libvirt: the host-side evidence was not saved: ") + e.what());
      }
      evidence_.reset();
    }
    json how = json::object();
    bool lost = false;
    try {
      if (qemu_pid_ > 0 && !threads_.empty()) facts_["threads_after"] = thread_facts();
      const bool ours = config_.define || (dom_ && started_);
      if (dom_ && ours) {
        const Deadline end = std::min(current_deadline(), Clock::now() + config_.shutdown_timeout);
        bool bye = false;
        if (guest_ && !guest_->hello().is_null()) bye = guest_->shutdown(end);
        how["agent_bye"] = bye;
        // Without vmlat's agent, the user's domain vmlat started is asked
        // to shut down as libvirt can (the QEMU guest agent, else ACPI); a
        // transient one holds nothing to keep and is destroyed.
        bool asked = false;
        if (!guest_ && !config_.define)
          asked = virDomainShutdownFlags(dom_.get(), config_.access == "guest-exec" ? VIR_DOMAIN_SHUTDOWN_GUEST_AGENT
                                                                                    : VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0;
        if (asked) how["shutdown_asked"] = config_.access == "guest-exec" ? "guest agent" : "ACPI";
        while ((bye || asked) && domain_active() && Clock::now() < end) interruptible_sleep_noexcept(50ms);
        if (!domain_active()) {
          how["ended_by"] = bye ? "guest poweroff" : asked ? "shutdown" : "ended by itself";
        } else if (virDomainDestroy(dom_.get()) == 0) {
          how["ended_by"] = "virDomainDestroy";
        } else {
          how["destroy_error"] = last_error_message();
        }
      }
      lost = conn_ && virConnectIsAlive(conn_.get()) != 1;
      if (lost) {
        how["libvirt_lost"] = true;
        // libvirtd is gone: the domain vmlat started is ended here (after
        // the guest's own poweroff, when the agent said bye).
        const Deadline end = std::min(current_deadline(), Clock::now() + config_.shutdown_timeout);
        while (how.value("agent_bye", false) && qemu_pid_ > 0 && find_qemu_pid(uuid_) == qemu_pid_ && Clock::now() < end)
          interruptible_sleep_noexcept(50ms);
        if (ours_to_kill() && qemu_pid_ > 0 && find_qemu_pid(uuid_) == qemu_pid_) {
          ::kill(qemu_pid_, SIGKILL);
          how["ended_by"] = "SIGKILL (libvirt unreachable)";
        }
      }
      if (dom_ && !config_.define && !lost) {
        int state = 0, reason = 0;
        if (virDomainGetState(dom_.get(), &state, &reason, 0) == 0) facts_["domain"]["state_after"] = state_name(state);
        if (!inactive_before_.empty()) {
          const std::string after = domain_xml(dom_.get(), VIR_DOMAIN_XML_INACTIVE);
          facts_["domain"]["definition_unchanged"] = after == inactive_before_;
        }
      }
    } catch (const std::exception& e) {
      how["error"] = e.what();
    } catch (...) {
    }
    facts_["teardown"] = how;
    try {
      guest_.reset();
      remote_.reset();
    } catch (...) {
    }
    try {
      if (!console_path_.empty() && fs::exists(console_path_)) ctx.save_artifact("console.log", slurp(console_path_));
    } catch (...) {
    }
    dom_.reset();
    conn_.reset();  // a transient domain is also destroyed by libvirt when its connection closes (autodestroy)
    std::error_code ec;
    if (!own_dir_.empty()) fs::remove_all(own_dir_, ec);
    host_.reset();
    if (lost)
      throw InfraError("libvirt: the connection to " + config_.uri + " was lost during the cell (libvirtd ended?)" +
                       (how.contains("ended_by") ? "; the domain vmlat started was ended by " + how["ended_by"].get<std::string>()
                                                 : std::string()));
  }

  json facts() const override { return facts_; }

 private:
  Executor& guest() {
    if (guest_) return *guest_;
    if (remote_) return *remote_;
    throw InfraError("libvirt backend: the guest is not running (used before boot() or after teardown())");
  }

  // access = "agent": vmlat's agent on its virtio-serial channel.
  void connect_agent(CellContext& ctx, const DomainXml& parsed) {
    const Channel* chan = parsed.channel(config_.channel);
    if (!chan || chan->type != "unix" || chan->source_path.empty())
      throw InfraError("libvirt: domain \"" + parsed.name + "\" has no unix channel with target name '" + config_.channel +
                       "' (add <channel type='unix'><source mode='bind'/><target type='virtio' name='" + config_.channel +
                       "'/></channel> and run the vmlat agent in the guest: README.md)");
    facts_["domain"]["channel"] = chan->source_path;
    const auto t0 = Clock::now();
    try {
      const Deadline connect_deadline = std::min(current_deadline(), Clock::now() + 60s);
      int fd = kvm::connect_unix(chan->source_path, connect_deadline, [this] { return domain_active(); });
      guest_ = std::make_unique<kvm::GuestExecutor>(std::make_unique<kvm::GuestChannel>(fd), "guest");
      json hello = guest_->wait_hello(current_deadline());
      facts_["boot"] = json{{"access", "agent"}, {"channel_to_hello_s", std::chrono::duration<double>(Clock::now() - t0).count()}};
      facts_["guest"] = json{{"hello", hello}};
      ctx.log().info("libvirt: guest agent up (kernel " + hello.value("kernel_release", std::string("?")) + ")");
    } catch (const PhaseTimeout&) {
      throw PhaseTimeout("libvirt: no hello from the vmlat agent on channel '" + config_.channel + "' (" +
                         chan->source_path + ") within the boot timeout" + console_tail());
    } catch (const InfraError& e) {
      throw InfraError(std::string("libvirt: the guest agent: ") + e.what() + console_tail());
    }
  }

  // access = "guest-exec": the QEMU guest agent, through libvirt.
  void connect_guest_exec(CellContext& ctx, const DomainXml& parsed) {
    const Channel* chan = parsed.channel(kQemuGuestAgentChannel);
    if (!chan)
      throw InfraError("libvirt: domain \"" + parsed.name + "\" has no channel with target name '" +
                       kQemuGuestAgentChannel + "' (add <channel type='unix'><target type='virtio' name='" +
                       kQemuGuestAgentChannel + "'/></channel> and run qemu-ga in the guest: README.md)");
    facts_["domain"]["channel"] = chan->source_path.empty() ? json(nullptr) : json(chan->source_path);
    const auto t0 = Clock::now();
    auto exec = std::make_unique<GuestExecExecutor>(libvirt_agent(dom_.get()), "guest");
    try {
      json info = exec->wait_ready(current_deadline());
      facts_["boot"] = json{{"access", "guest-exec"}, {"agent_ready_s", std::chrono::duration<double>(Clock::now() - t0).count()}};
      facts_["guest"] = json{{"qemu_ga", info}};
      ctx.log().info("libvirt: QEMU guest agent " + info.value("version", std::string("?")) + " up: guest-exec");
    } catch (const PhaseTimeout& e) {
      throw PhaseTimeout(std::string("libvirt: ") + e.what() + " within the boot timeout" + console_tail());
    }
    remote_ = std::move(exec);
  }

  // access = "ssh": the address the plan gives; ssh's own failures (exit
  // 255) are retried until the boot deadline: the guest may still be booting.
  void connect_ssh(CellContext& ctx) {
    const SshTarget target = ssh_target(config_);
    auto ssh = make_ssh_executor(target, ctx.work_dir() / "libvirt-ssh", "/tmp");
    const auto t0 = Clock::now();
    std::string last;
    for (;;) {
      auto r = ssh->run(Command{{"true"}, 30s});
      if (r.ok()) break;
      last = r.describe();
      if (!ssh_failed(r.exit_code))
        throw InfraError("libvirt: ssh to " + target.describe() + " connects, but `true` failed there: " + last);
      if (Clock::now() >= current_deadline())
        throw PhaseTimeout("libvirt: no ssh connection to " + target.describe() + " within the boot timeout: " + last);
      interruptible_sleep(1s);
    }
    facts_["boot"] = json{{"access", "ssh"}, {"ssh_ready_s", std::chrono::duration<double>(Clock::now() - t0).count()}};
    facts_["guest"] = json{{"ssh", target.describe()}};
    ctx.log().info("libvirt: ssh to " + target.describe() + " works");
    remote_ = std::move(ssh);
  }

  static void interruptible_sleep_noexcept(std::chrono::milliseconds d) { ::usleep(static_cast<useconds_t>(d.count() * 1000)); }

  bool ours_to_kill() const { return config_.define || started_; }

  bool domain_active() const {
    if (!dom_) return false;
    return virDomainIsActive(dom_.get()) == 1;
  }

  json thread_facts() const {
    json out = json::array();
    for (const auto& t : threads_) {
      json e{{"tid", t.tid}, {"comm", t.comm}, {"role", t.role}};
      if (t.role == "vcpu") e["vcpu"] = t.vcpu;
      try {
        e["state"] = kvm::read_thread_state(qemu_pid_, t.tid);
      } catch (...) {
        e["state"] = nullptr;
      }
      e["schedstat"] = schedstat(qemu_pid_, t.tid);
      out.push_back(e);
    }
    return out;
  }

  std::string console_tail() const {
    if (console_path_.empty()) return "";
    std::string text = slurp(console_path_);
    if (text.size() > 300) text = text.substr(text.size() - 300);
    return text.empty() ? "" : "; console.log ends with: " + text;
  }

  void start_existing(CellContext& ctx) {
    ctx.log().info("libvirt: starting shut-off domain \"" + config_.domain + "\" (start = true)");
    if (virDomainCreate(dom_.get()) < 0) throw_last_error("libvirt: starting domain \"" + config_.domain + "\"");
    started_ = true;
  }

  void define_and_start(CellContext& ctx) {
    // The channel socket's path must fit a unix socket address (107 bytes),
    // which the cell's work directory need not: a short private directory.
    char tmpl[] = "/tmp/vmlat-libvirt-XXXXXX";
    if (!::mkdtemp(tmpl)) throw InfraError(std::string("libvirt: mkdtemp: ") + std::strerror(errno));
    own_dir_ = tmpl;
    console_path_ = own_dir_ / "console.log";
    std::string id;
    for (char ch : ctx.cell().id)
      id += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_') ? ch : '_';
    TransientDomain t;
    t.name = "vmlat-" + id.substr(0, 40) + "-" + std::to_string(::getpid()) + "-" + own_dir_.filename().string().substr(14);
    t.type = config_.domain_type == "auto" ? (kvm_usable() ? "kvm" : "qemu") : config_.domain_type;
    t.kernel = fs::absolute(kernel_).string();
    t.initrd = fs::absolute(initrd_).string();
    t.cmdline = kvm::kSerialGuestAppend + (config_.append.empty() ? std::string() : " " + config_.append);
    t.channel_path = (own_dir_ / "chan.sock").string();
    t.console_path = console_path_.string();
    const std::string xml = transient_domain_xml(config_, t);
    ctx.save_artifact("domain.xml", xml);
    facts_["domain"] = json{{"mode", "transient"}, {"name", t.name}, {"type", t.type}, {"defined_xml", xml}};
    ctx.log().info("libvirt: creating transient domain " + t.name + " (" + t.type + ", " + std::to_string(config_.vcpus) +
                   " vCPUs, " + std::to_string(config_.memory_mb) + " MiB)");
    // Autodestroy: libvirt destroys the domain when this connection closes,
    // whatever ends vmlat.
    virDomainPtr d = virDomainCreateXML(conn_.get(), xml.c_str(), VIR_DOMAIN_START_AUTODESTROY);
    if (!d) {
      std::string why = last_error_message();
      if (why.find("locked memory") != std::string::npos)
        why += " (lock_memory = true needs a memlock limit libvirt may raise: CAP_SYS_RESOURCE; lock_memory = false "
               "measures without it)";
      throw InfraError("libvirt: creating the transient domain: " + why);
    }
    dom_ = Domain(d);
  }

  void resolve_image(CellContext& ctx) {
    Executor& host = ctx.host();
    if (!config_.kernel.empty()) {
      if (auto axis = ctx.cell().axis("guest_kernel"))
        throw InfraError("libvirt: the cell's guest_kernel axis says \"" + *axis + "\" but the plan gives its own kernel");
      for (const auto& p : {config_.kernel, config_.initrd})
        if (!fs::is_regular_file(p)) throw InfraError("libvirt: " + p + " does not exist or is not a file");
      kernel_ = config_.kernel;
      initrd_ = config_.initrd;
      facts_["image"] = json{{"source", "user"}, {"kernel", kernel_}, {"initrd", initrd_}};
      return;
    }
    std::string flavour = config_.image;
    if (auto axis = ctx.cell().axis("guest_kernel")) flavour = *axis;
    if (flavour != "nrt" && flavour != "rt")
      throw InfraError("libvirt: guest kernel \"" + flavour + "\" is not one build-guest knows (\"nrt\" or \"rt\")");
    std::string script = config_.build_guest;
    if (script.empty() && fs::exists(VMLAT_LIBVIRT_BUILD_GUEST_SOURCE)) script = VMLAT_LIBVIRT_BUILD_GUEST_SOURCE;
    if (script.empty()) script = find_in_path("build-guest", libexec_dirs()).string();
    if (script.empty()) throw InfraError("libvirt: build-guest not found (libexec/vmlat; or set build_guest = \"PATH\")");
    auto agent = host.find_program("vmlat-guest-agent");
    if (!agent) throw InfraError("libvirt: vmlat-guest-agent not found (build/libexec, libexec/vmlat)");
    std::vector<std::string> argv{script, "--flavour", flavour, "--cache", config_.cache, "--print-json", "--agent", *agent};
    const auto probe = host.find_program("vmlat-probe");
    if (probe) argv.insert(argv.end(), {"--probe", *probe});
    // guest-exec needs qemu-ga in the image: an image of its own (and stamps).
    const bool qemu_ga = config_.access == "guest-exec";
    if (qemu_ga) argv.push_back("--qemu-ga");
    // build-guest's stamps (as the kvm backend): when nothing it depended on
    // changed, its last resolution is booted without running it (~1 s of
    // CPU, more on a loaded machine, taken from the guest booting beside it).
    kvm::StampCheck stamped = kvm::check_stamps(kvm::stamps_file(config_.cache, flavour, qemu_ga),
                                                kvm::ImageRequest{script, flavour, *agent, probe ? *probe : std::string(), qemu_ga});
    if (stamped.guest) {
      ctx.log().info("libvirt: " + flavour + " guest image: " + stamped.reason + "; build-guest not run");
      use_guest_json(*stamped.guest, flavour, "build-guest's stamps: " + stamped.reason);
      return;
    }
    ctx.log().info("libvirt: build-guest's stamps do not hold: " + stamped.reason);
    auto r = host.run(Command{argv, std::chrono::minutes(15)});
    ctx.save_artifact("build-guest.log", r.err);
    if (!r.ok()) throw InfraError("libvirt: build-guest --flavour " + flavour + " failed: " + r.describe());
    json guest;
    try {
      guest = json::parse(r.out);
    } catch (const std::exception& e) {
      throw InfraError(std::string("libvirt: build-guest printed unparsable JSON: ") + e.what());
    }
    use_guest_json(guest, flavour, "build-guest");
    if (qemu_ga && !guest.value("contents", json::object()).value("qemu_ga", json::object()).value("included", false))
      throw InfraError("libvirt: access = \"guest-exec\" but build-guest's image has no qemu-ga (" + script + ")");
  }

  void use_guest_json(const json& guest, const std::string& flavour, const std::string& resolved) {
    kernel_ = guest.value("vmlinuz", std::string());
    initrd_ = guest.value("initramfs", std::string());
    if (kernel_.empty() || initrd_.empty()) throw InfraError("libvirt: build-guest's guest.json names no vmlinuz/initramfs");
    facts_["image"] = json{{"source", "build-guest"}, {"flavour", flavour}, {"hash", guest.value("hash", json(nullptr))},
                           {"kernel", kernel_},       {"initrd", initrd_},       {"resolved", resolved}};
  }

  Config config_;
  json facts_ = json::object();
  Connection conn_;
  Domain dom_;
  int state_before_ = VIR_DOMAIN_RUNNING;
  bool started_ = false;
  std::string inactive_before_, uuid_, kernel_, initrd_;
  fs::path own_dir_, console_path_;
  pid_t qemu_pid_ = 0;
  std::vector<kvm::HostThread> threads_;
  std::unique_ptr<kvm::HostEvidence> evidence_;
  std::unique_ptr<kvm::GuestExecutor> guest_;
  std::unique_ptr<Executor> remote_;  // guest-exec or ssh
  std::unique_ptr<Executor> host_;
};

}  // namespace
}  // namespace vmlat::libvirt

VMLAT_PLUGIN(vmlat::libvirt::LibvirtBackend, "libvirt", "backend", "0.1.0",
             "libvirt domains (yours by name, or transient from vmlat's images): measured inside, linted for real time")
