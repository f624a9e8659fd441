// The kvm backend: boots a QEMU guest (KVM where usable, TCG otherwise),
// talks to the guest agent over a virtio-serial channel, runs the probe in
// the guest, tunes QEMU's host threads through QMP + /proc, and always tears
// the VM down. See README.md.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <vmlat/cpus.hpp>
#include <vmlat/text.hpp>
#include <vmlat/atomic_file.hpp>
#include <vmlat/local.hpp>
#include <vmlat/plugin.hpp>
#include <vmlat/process.hpp>
#include <vmlat/units.hpp>

#include "guest_channel.hpp"
#include "guest_image_settings.hpp"
#include "host_evidence.hpp"
#include "image_stamps.hpp"
#include "kvm_settings.hpp"
#include "qmp.hpp"

#ifndef VMLAT_KVM_BUILD_GUEST_SOURCE
#define VMLAT_KVM_BUILD_GUEST_SOURCE ""
#endif

namespace vmlat::kvm {
namespace {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr const char* kPortName = "org.vmlat.0";


// The last `n` non-empty lines of `text`, for error messages.
std::string tail_lines(const std::string& text, std::size_t n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    if (!out.empty()) out += " | ";
    out += lines[i].substr(0, 200);
  }
  return out;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct KvmCheck {
  bool usable = false;
  std::string reason;
};

// /dev/kvm must open read-write, speak API 12, and the CPU must advertise
// VMX or SVM: some sandboxes expose a /dev/kvm whose guests never run.
KvmCheck check_kvm() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return {false, std::string("cannot open /dev/kvm: ") + std::strerror(errno)};
  const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  if (version != KVM_API_VERSION)
    return {false, "/dev/kvm reports API version " + std::to_string(version) + ", not " +
                       std::to_string(KVM_API_VERSION)};
  const std::string cpuinfo = slurp("/proc/cpuinfo");
  bool flag = false;
  std::istringstream in(cpuinfo);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') == std::string::npos ? 0 : line.find(':') + 1));
    std::string w;
    while (words >> w)
      if (w == "vmx" || w == "svm") flag = true;
    break;
  }
  if (!flag)
    return {false, "/dev/kvm exists but the CPU advertises neither vmx nor svm (no hardware virtualization "
                   "for this machine; nested virtualization off?)"};
  return {true, "/dev/kvm usable (API " + std::to_string(version) + ")"};
}

// "size:mtime" of a file, to notice a rebuilt agent/probe/script.
std::string file_stamp(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return "?";
  return std::to_string(size) + ":" + std::to_string(mtime.time_since_epoch().count());
}

std::mutex& image_memo_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, json>& image_memo() {
  static std::map<std::string, json> memo;
  return memo;
}

class KvmBackend final : public Backend {
 public:
  void configure(Settings& settings) override { config_ = read_settings(settings); }

  std::vector<std::string> placements() const override { return {"host", "guest"}; }
  // Placement (docs/plan-format.md): kvm cells go to hosts tagged "kvm".
  static constexpr const char* kHostTags = "kvm";

  void prepare(CellContext& ctx) override {
    facts_ = json::object();
    if (auto why = pins_problem(config_, online_cpus())) throw InfraError("kvm: " + *why);
    if (auto why = starvation_problem(config_, online_cpus()))
      throw InfraError("kvm: " + *why + " (set allow_rt_starvation = true to run it anyway)");
    Executor& host = ctx.host();

    // QEMU and the accelerator.
    auto qemu = host.find_program(config_.qemu);
    if (!qemu)
      throw InfraError(config_.qemu + " not found on " + host.name() + ": install the Debian package qemu-system-x86");
    qemu_path_ = *qemu;
    auto version = host.run(Command{{qemu_path_, "--version"}, 20s});
    json qemu_facts{{"program", qemu_path_}, {"version", nullptr}};
    if (version.ok()) {
      std::string first = version.out.substr(0, version.out.find('\n'));
      qemu_facts["version"] = trim(first);
    }
    facts_["qemu"] = qemu_facts;

    const KvmCheck kvm = check_kvm();
    if (config_.accel == "kvm" || config_.require_kvm) {
      if (!kvm.usable) throw InfraError("kvm: KVM is required by the plan but not usable here: " + kvm.reason);
      accel_ = "kvm";
    } else if (config_.accel == "tcg") {
      accel_ = "tcg";
    } else {
      accel_ = kvm.usable ? "kvm" : "tcg";
    }
    facts_["accelerator"] = accel_;
    facts_["kvm_check"] = kvm.reason;
    if (accel_ == "tcg") {
      const std::string warning =
          "kvm: running the guest under TCG (software emulation)" +
          (config_.accel == "tcg" ? std::string(" as the plan asks") : ": " + kvm.reason) +
          "; latencies measured in this guest are not representative of KVM";
      facts_["accelerator_warning"] = warning;
      ctx.log().warn(warning);
    }

    resolve_image(ctx);
  }

  void boot(CellContext& ctx) override {
    boot_once(ctx);
    if (!speculative_job_) return;
    // The image was booted on the strength of the last resolution while
    // build-guest re-checked it; it normally confirms the same image.
    json guest = finish_speculative_check(ctx);
    if (guest.value("hash", std::string()) == facts_["image"].value("hash", std::string())) {
      facts_["image"]["resolved"] = "build-guest, checked while the guest booted";
    } else {
      ctx.log().warn("kvm: build-guest resolved a new image (" + guest.value("hash", std::string("?")) +
                     ") while the previous one booted: rebooting with it");
      kill_vm();
      use_guest_json(guest, facts_["image"].value("flavour", std::string()), "build-guest (rebooted)");
      boot_once(ctx);
    }
  }

  void boot_once(CellContext& ctx) {
    own_dir_ = ctx.work_dir() / "kvm";
    fs::create_directories(own_dir_);
    console_path_ = own_dir_ / "console.log";
    qemu_log_path_ = own_dir_ / "qemu.log";
    // The sockets live in the cell's work directory (a SIGKILL of vmlat
    // leaves nothing outside the run directory), whose path may exceed the
    // 107 bytes of a unix socket address: QEMU inherits a descriptor of the
    // directory and binds them as /proc/self/fd/N/<name>, vmlat connects
    // through its own copy of it. QEMU keeps vmlat's working directory, so
    // every path in its argv (the plan's extra_args too) means what it means
    // to vmlat.
    sock_dir_ = own_dir_ / "sockets";
    fs::create_directories(sock_dir_);
    close_sock_dir();
    sock_dir_fd_ = ::open(sock_dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sock_dir_fd_ < 0) throw InfraError("kvm: cannot open " + sock_dir_.string() + ": " + std::strerror(errno));
    // The same text names the directory in both processes: the descriptor
    // keeps its number across fork and exec.
    const std::string reach = "/proc/self/fd/" + std::to_string(sock_dir_fd_) + "/";
    const std::string chan_sock = reach + "chan.sock", qmp_sock = reach + "qmp.sock";
    // Absolute in the recorded argv (facts): the evidence names the file.
    const std::string kernel = kernel_.empty() ? kernel_ : fs::absolute(kernel_).string();
    const std::string initrd = initrd_.empty() ? initrd_ : fs::absolute(initrd_).string();
    const std::string disk = disk_.empty() ? disk_ : fs::absolute(disk_).string();

    std::string append = kSerialGuestAppend;
    if (!config_.append.empty()) append += " " + config_.append;
    std::string cpu_model = config_.cpu_model;
    if (cpu_model.empty() && accel_ == "kvm") cpu_model = "host";

    std::vector<std::string> argv{qemu_path_, "-name", "vmlat-" + ctx.cell().id + ",debug-threads=on",
                                  "-accel", accel_, "-m", std::to_string(config_.memory_mb), "-smp",
                                  std::to_string(config_.vcpus)};
    if (!cpu_model.empty()) argv.insert(argv.end(), {"-cpu", cpu_model});
    argv.insert(argv.end(), {"-nographic", "-nodefaults", "-monitor", "none", "-no-reboot"});
    if (!disk_.empty()) {
      // The user's disk boots through its own bootloader; snapshot=on keeps
      // the image untouched (writes go to a temporary overlay).
      argv.insert(argv.end(), {"-drive", "file=" + disk + ",format=" + config_.disk_format + ",if=virtio,snapshot=on"});
      append.clear();
    } else {
      argv.insert(argv.end(), {"-kernel", kernel, "-initrd", initrd, "-append", append});
    }
    argv.insert(argv.end(),
                {"-serial", "file:" + console_path_.string(), "-device",
                 "virtio-serial-pci", "-chardev", "socket,id=ch0,path=" + chan_sock + ",server=on,wait=off",
                 "-device", std::string("virtserialport,chardev=ch0,name=") + kPortName, "-qmp",
                 "unix:" + qmp_sock + ",server=on,wait=off"});
    argv.insert(argv.end(), config_.extra_args.begin(), config_.extra_args.end());
    facts_["vm"] = json{{"memory_mb", config_.memory_mb},
                        {"vcpus", config_.vcpus},
                        {"cpu_model", cpu_model.empty() ? json("qemu default") : json(cpu_model)},
                        {"append", append},
                        {"argv", argv}};

    ctx.log().info("kvm: starting " + qemu_path_ + " (" + accel_ + ", " + std::to_string(config_.vcpus) +
                   " vCPUs, " + std::to_string(config_.memory_mb) + " MiB)");
    const auto t0 = Clock::now();
    ProcessSpec qemu_spec{argv, {}, qemu_log_path_, qemu_log_path_, {}};
    qemu_spec.inherit_fds = {sock_dir_fd_};
    qemu_ = Process::spawn(qemu_spec);
    qemu_started_ = true;
    auto alive = [this] { return qemu_.running(); };

    try {
      const Deadline connect_deadline = std::min(current_deadline(), Clock::now() + 60s);
      int chan_fd = connect_unix(chan_sock, connect_deadline, alive);
      guest_ = std::make_unique<GuestExecutor>(std::make_unique<GuestChannel>(chan_fd), "guest");
      int qmp_fd = connect_unix(qmp_sock, connect_deadline, alive);
      qmp_ = std::make_unique<QmpClient>(qmp_fd, std::min(current_deadline(), Clock::now() + 30s));
      if (auto v = qmp_->greeting()["QMP"]["version"]["qemu"]; v.is_object())
        facts_["qemu"]["qmp_version"] = std::to_string(v.value("major", 0)) + "." +
                                        std::to_string(v.value("minor", 0)) + "." +
                                        std::to_string(v.value("micro", 0));

      json hello = guest_->wait_hello(current_deadline());
      const auto t_hello = Clock::now();
      facts_["boot"] = json{{"qemu_start_to_hello_s", seconds_between(t0, t_hello)},
                            {"guest_boot_ns", hello.value("boot_ns", json(nullptr))}};
      ctx.log().info("kvm: guest agent up after " + std::to_string(seconds_between(t0, t_hello)) + "s (kernel " +
                     hello.value("kernel_release", std::string("?")) + ")");
      facts_["guest"] = json{{"hello", hello}};
    } catch (const PhaseTimeout&) {
      throw PhaseTimeout("kvm: the guest did not come up within the boot timeout (" +
                         format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0)) +
                         " after QEMU started, no hello from the agent); console.log ends with: " +
                         tail_lines(slurp(console_path_), 3));
    } catch (const InfraError& e) {
      if (!qemu_.running()) {
        auto status = qemu_.stop(0ms);
        throw InfraError(std::string("kvm: QEMU ended during boot (") + status.describe() +
                         "): " + tail_lines(slurp(qemu_log_path_), 3) + "; console: " +
                         tail_lines(slurp(console_path_), 3) + " [" + e.what() + "]");
      }
      throw;
    }

    // Host threads: QMP names the vCPU threads, /proc the rest.
    json cpus_fast = qmp_->execute("query-cpus-fast");
    threads_ = qemu_threads(qemu_.pid(), cpus_fast);
    TuningRequest request{config_.vcpu_pin, config_.vcpu_priority, config_.emulator_pin, config_.emulator_priority};
    json tuning = apply_tuning(qemu_.pid(), threads_, request);
    facts_["tuning"] = tuning;
    const bool asked = !request.vcpu_pin.empty() || request.vcpu_priority > 0 || !request.emulator_pin.empty() ||
                       request.emulator_priority > 0;
    if (asked && !tuning.value("ok", false)) {
      std::string errors;
      for (const auto& e : tuning["errors"]) errors += (errors.empty() ? "" : "; ") + e.get<std::string>();
      throw InfraError("kvm: the thread tuning was not applied as asked: " + errors);
    }

    // The guest as the probe will see it.
    facts_["guest"]["system"] = collect_system_facts(*guest_);
    start_evidence();
  }

  // The vCPU threads' host-side evidence, sampled until teardown; two clock
  // exchanges now and two after the measurement map the guest's spikes.
  void start_evidence() {
    evidence_.reset();
    if (config_.host_evidence.count() == 0) return;
    std::vector<EvidenceVcpu> vcpus;
    for (const auto& t : threads_)
      if (t.role == "vcpu") vcpus.push_back({t.vcpu, t.tid});
    evidence_ = std::make_unique<HostEvidence>(qemu_.pid(), vcpus, own_dir_ / kHostEvidenceFile, config_.host_evidence, accel_,
                                               sampler_cpus(config_.emulator_pin, config_.vcpu_pin, online_cpus()));
    for (int i = 0; i < 2; ++i) evidence_->exchange(*host_, *guest_);
  }

  void finish_evidence(CellContext& ctx) noexcept {
    if (!evidence_) return;
    try {
      if (guest_ && qemu_.running())
        for (int i = 0; i < 2; ++i) evidence_->exchange(*host_, *guest_);
      evidence_->stop();
      facts_["host_evidence"] = evidence_->facts();
      ctx.save_artifact(kHostEvidenceFile, slurp(evidence_->file()));
    } catch (const std::exception& e) {
      ctx.log().warn(std::string("kvm: the host-side evidence was not saved: ") + e.what());
    } catch (...) {
    }
    evidence_.reset();
  }

  Executor& probe_target() override { return guest(); }

  std::vector<int> target_threads() const override {
    std::vector<int> vcpus;
    for (const auto& t : threads_)
      if (t.role == "vcpu") vcpus.push_back(static_cast<int>(t.tid));
    return vcpus;
  }

  // Stops the current VM at once (used when a speculatively booted image
  // turns out to be stale).
  void kill_vm() noexcept {
    evidence_.reset();
    try {
      guest_.reset();
      qmp_.reset();
    } catch (...) {
    }
    if (qemu_started_) qemu_.stop(2s);
    qemu_started_ = false;
    std::error_code ec;
    close_sock_dir();
    if (!sock_dir_.empty()) fs::remove_all(sock_dir_, ec);
  }

  // Waits for the background build-guest started by prepare() and returns
  // its guest.json (also remembered for the next cells and runs).
  json finish_speculative_check(CellContext& ctx) {
    auto job = std::move(speculative_job_);
    while (job->running()) interruptible_sleep(50ms);
    auto r = job->stop(0ms);
    ctx.save_artifact("build-guest.log", r.err);
    if (!r.ok()) throw InfraError("kvm: build-guest failed: " + r.describe());
    json guest;
    try {
      guest = json::parse(r.out);
    } catch (const std::exception& e) {
      throw InfraError(std::string("kvm: build-guest printed unparsable JSON: ") + e.what());
    }
    remember(speculative_key_, guest);
    return guest;
  }

  Executor& placement(const std::string& where) override {
    if (where == "guest") return guest();
    if (where == "host") {
      if (!host_) throw InfraError("kvm backend: placement \"host\" used before prepare()");
      return *host_;
    }
    throw InfraError("the kvm backend has no placement \"" + where + "\": it offers \"host\" and \"guest\"");
  }

  void teardown(CellContext& ctx) noexcept override {
    if (speculative_job_) {
      speculative_job_->stop(2s);  // boot failed before the re-check ended
      speculative_job_.reset();
    }
    finish_evidence(ctx);
    json how = json::object();
    try {
      if (qemu_started_ && qemu_.running()) {
        const Deadline end = std::min(current_deadline(), Clock::now() + config_.shutdown_timeout);
        bool bye = false;
        if (guest_ && !guest_->hello().is_null()) bye = guest_->shutdown(end);
        how["agent_bye"] = bye;
        // After bye the guest powers off within a moment; without it (no
        // agent, a hung guest) there is nothing to wait for.
        auto status = qemu_.wait(bye ? end : Clock::now(), false);
        if (!status.timed_out) {
          how["ended_by"] = "guest poweroff";
        } else {
          if (qmp_) {
            qmp_->send_only("quit");
            status = qemu_.wait(std::min(current_deadline(), Clock::now() + 3s), false);
          }
          if (qmp_ && !status.timed_out) {
            how["ended_by"] = "qmp quit";
          } else {
            auto s = qemu_.stop(3s);  // SIGTERM, then SIGKILL
            how["ended_by"] = s.signal == SIGKILL ? "SIGKILL" : "SIGTERM";
          }
        }
      } else if (qemu_started_) {
        auto s = qemu_.stop(0ms);
        how["ended_by"] = "exited by itself (" + s.describe() + ")";
      }
    } catch (const std::exception& e) {
      how["error"] = e.what();
    } catch (...) {
    }
    // Whatever happened above: no QEMU survives the cell.
    if (qemu_started_) qemu_.stop(2s);
    if (qemu_started_) facts_["teardown"] = how;
    try {
      guest_.reset();
      qmp_.reset();
    } catch (...) {
    }
    try {
      if (!console_path_.empty() && fs::exists(console_path_))
        ctx.save_artifact("console.log", slurp(console_path_));
      if (!qemu_log_path_.empty() && fs::exists(qemu_log_path_)) {
        const std::string log = slurp(qemu_log_path_);
        if (!log.empty()) ctx.save_artifact("qemu.log", log);
      }
    } catch (...) {
    }
    std::error_code ec;
    close_sock_dir();
    if (!sock_dir_.empty()) fs::remove_all(sock_dir_, ec);
    host_.reset();
  }

  json facts() const override { return facts_; }

 private:
  Executor& guest() {
    if (!guest_) throw InfraError("kvm backend: the guest is not running (used before boot() or after teardown())");
    return *guest_;
  }

  // kernel_ + initrd_: the user's, or built (cached) by build-guest.
  void resolve_image(CellContext& ctx) {
    Executor& host = ctx.host();
    host_ = make_local_executor(ctx.work_dir() / "kvm-host", "host");
    if (!config_.disk.empty()) {
      if (auto axis = ctx.cell().axis("guest_kernel"))
        throw InfraError("kvm: the cell's guest_kernel axis says \"" + *axis + "\" but this backend boots the plan's own disk " +
                         config_.disk + ": drop the axis or the disk setting");
      if (!fs::is_regular_file(config_.disk) && !fs::is_block_file(config_.disk))
        throw InfraError("kvm: disk " + config_.disk + " does not exist or is not a file or block device");
      disk_ = config_.disk;
      facts_["image"] = json{{"source", "user-disk"}, {"disk", disk_}, {"format", config_.disk_format}, {"snapshot", true}};
      return;
    }
    if (!config_.kernel.empty()) {
      if (auto axis = ctx.cell().axis("guest_kernel"))
        throw InfraError("kvm: the cell's guest_kernel axis says \"" + *axis +
                         "\" but this backend boots the plan's own kernel " + config_.kernel +
                         ": drop the axis or the kernel/initrd settings");
      for (const auto& p : {config_.kernel, config_.initrd})
        if (!fs::is_regular_file(p)) throw InfraError("kvm: " + p + " does not exist or is not a file");
      kernel_ = config_.kernel;
      initrd_ = config_.initrd;
      json image{{"source", "user"}, {"kernel", kernel_}, {"initrd", initrd_}};
      auto sums = host.run(Command{{"sha256sum", kernel_, initrd_}, 60s});
      if (sums.ok()) {
        std::istringstream in(sums.out);
        std::string sum, path;
        in >> sum >> path;
        image["kernel_sha256"] = sum;
        in >> sum >> path;
        image["initrd_sha256"] = sum;
      }
      facts_["image"] = image;
      return;
    }
    std::string flavour = config_.image;
    if (auto axis = ctx.cell().axis("guest_kernel")) flavour = *axis;
    if (flavour != "nrt" && flavour != "rt")
      throw InfraError("kvm: guest kernel \"" + flavour +
                       "\" is not one build-guest knows (\"nrt\" or \"rt\"); set kernel + initrd for your own");
    std::string script = config_.build_guest;
    if (script.empty() && fs::exists(VMLAT_KVM_BUILD_GUEST_SOURCE)) script = VMLAT_KVM_BUILD_GUEST_SOURCE;
    if (script.empty()) script = find_in_path("build-guest", libexec_dirs()).string();
    if (script.empty())
      throw InfraError("kvm: build-guest not found (installed to libexec/vmlat; or set build_guest = \"PATH\")");
    auto agent = host.find_program("vmlat-guest-agent");
    if (!agent)
      throw InfraError("kvm: vmlat-guest-agent not found (built into build/libexec, installed to libexec/vmlat)");
    std::vector<std::string> argv{script, "--flavour", flavour, "--cache", config_.cache, "--print-json",
                                  "--agent", *agent};
    const auto probe = host.find_program("vmlat-probe");
    if (probe) argv.insert(argv.end(), {"--probe", *probe});
    // Within one vmlat process, an image already resolved for the same
    // inputs (same argv, same script/agent/probe files) is reused: build-guest
    // costs ~1s per call to re-check the kernel package and hash its inputs.
    speculation_flavour_ = flavour;
    std::string key;
    for (const auto& a : argv) key += a + '\n';
    for (const auto& f : {script, *agent, argv.back()}) key += file_stamp(f) + '\n';
    json guest;
    bool reused = false;
    {
      std::lock_guard lock(image_memo_mutex());
      auto it = image_memo().find(key);
      if (it != image_memo().end() && fs::is_regular_file(it->second.value("vmlinuz", std::string())) &&
          fs::is_regular_file(it->second.value("initramfs", std::string()))) {
        guest = it->second;
        reused = true;
      }
    }
    std::string stamp_reason;
    if (!reused) {
      ImageRequest request{script, flavour, *agent, probe ? *probe : std::string()};
      StampCheck stamped = check_stamps(fs::path(config_.cache) / (".stamps-" + flavour + ".json"), request);
      stamp_reason = stamped.reason;
      if (stamped.guest) {
        guest = std::move(*stamped.guest);
        ctx.log().info("kvm: " + flavour + " guest image " + guest.value("hash", std::string("?")) + ": " +
                       stamp_reason + "; build-guest not run");
        {
          std::lock_guard lock(image_memo_mutex());
          image_memo()[key] = guest;
        }
        use_guest_json(guest, flavour, "build-guest's stamps: " + stamp_reason);
        return;
      }
    }
    if (!reused) {
      // The last resolution for the same inputs (kept in the cache), if its
      // files are still there: boot it while build-guest re-checks it.
      ctx.log().info("kvm: build-guest's stamps do not hold: " + stamp_reason);
      json last = read_last(key);
      if (!last.is_null()) {
        ctx.log().info("kvm: booting the last " + flavour + " guest image " + last.value("hash", std::string("?")) +
                       " while " + script + " re-checks it");
        speculative_job_ = host.start(Command{argv});
        speculative_key_ = key;
        guest = last;
      } else {
        ctx.log().info("kvm: resolving the " + flavour + " guest image with " + script);
        auto r = host.run(Command{argv, std::chrono::minutes(15)});
        ctx.save_artifact("build-guest.log", r.err);
        if (!r.ok()) throw InfraError("kvm: build-guest --flavour " + flavour + " failed: " + r.describe());
        try {
          guest = json::parse(r.out);
        } catch (const std::exception& e) {
          throw InfraError(std::string("kvm: build-guest printed unparsable JSON: ") + e.what());
        }
        remember(key, guest);
      }
    } else {
      ctx.log().info("kvm: reusing the " + flavour + " guest image " + guest.value("hash", std::string("?")) +
                     " resolved earlier in this run");
    }
    use_guest_json(guest, flavour,
                   reused ? "earlier in this run" : speculative_job_ ? "last resolution (being re-checked)" : "build-guest");
  }

  // Remembers a resolution in this process and in the cache directory.
  void remember(const std::string& key, const json& guest) {
    {
      std::lock_guard lock(image_memo_mutex());
      image_memo()[key] = guest;
    }
    try {
      write_file_atomic(last_path(), json{{"key", key}, {"guest", guest}}.dump() + "\n");
    } catch (...) {
      // Only an optimisation.
    }
  }

  std::filesystem::path last_path() const {
    return fs::path(config_.cache) / (".kvm-last-" + std::string(speculation_flavour_) + ".json");
  }

  json read_last(const std::string& key) const {
    try {
      json last = json::parse(slurp(last_path()));
      if (last.value("key", std::string()) != key) return nullptr;
      const json& g = last["guest"];
      if (!fs::is_regular_file(g.value("vmlinuz", std::string())) ||
          !fs::is_regular_file(g.value("initramfs", std::string())))
        return nullptr;
      return g;
    } catch (...) {
      return nullptr;
    }
  }

  void use_guest_json(const json& guest, const std::string& flavour, const std::string& resolved) {
    kernel_ = guest.value("vmlinuz", std::string());
    initrd_ = guest.value("initramfs", std::string());
    if (kernel_.empty() || initrd_.empty()) throw InfraError("kvm: build-guest's guest.json names no vmlinuz/initramfs");
    static const json empty = json::object();
    const json& kernel = guest.contains("kernel") && guest["kernel"].is_object() ? guest["kernel"] : empty;
    const json& contents = guest.contains("contents") && guest["contents"].is_object() ? guest["contents"] : empty;
    const json& probe = contents.contains("probe") && contents["probe"].is_object() ? contents["probe"] : empty;
    json image{{"source", "build-guest"},
               {"flavour", flavour},
               {"hash", guest.value("hash", json(nullptr))},
               {"dir", guest.value("dir", json(nullptr))},
               {"kernel", kernel_},
               {"initrd", initrd_},
               {"kernel_package", kernel.value("package", json(nullptr))},
               {"kernel_version", kernel.value("version", json(nullptr))},
               {"kernel_release", kernel.value("release", json(nullptr))},
               {"kernel_preempt", kernel.value("preempt", json(nullptr))},
               {"probe_included", probe.value("included", false)},
               {"resolved", resolved}};
    facts_["image"] = image;
  }

  Config config_;
  json facts_ = json::object();
  std::string qemu_path_, accel_ = "tcg", kernel_, initrd_, disk_;
  void close_sock_dir() noexcept {
    if (sock_dir_fd_ >= 0) ::close(sock_dir_fd_);
    sock_dir_fd_ = -1;
  }

  fs::path sock_dir_, own_dir_, console_path_, qemu_log_path_;
  int sock_dir_fd_ = -1;
  Process qemu_;
  bool qemu_started_ = false;
  std::unique_ptr<GuestExecutor> guest_;
  std::unique_ptr<QmpClient> qmp_;
  std::unique_ptr<Executor> host_;
  std::vector<HostThread> threads_;
  std::unique_ptr<HostEvidence> evidence_;
  std::unique_ptr<Job> speculative_job_;
  std::string speculative_key_;
  std::string speculation_flavour_ = "nrt";
};

}  // namespace
}  // namespace vmlat::kvm

VMLAT_PLUGIN(vmlat::kvm::KvmBackend, "kvm", "backend", "0.1.0",
             "QEMU guests (KVM, else TCG): the probe runs inside, QEMU's threads are pinned and prioritised")
