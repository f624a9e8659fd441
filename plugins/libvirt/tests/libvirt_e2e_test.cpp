// `vmlat run` with the libvirt backend against a real libvirtd with the QEMU
// driver, started by each test with a configuration of its own: a mount
// namespace (unshare) puts private directories over /etc/libvirt,
// /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt, so
// the test's qemu.conf (user root, cgroup_controllers = [ ], stdio_handler
// file) is the daemon's, and the socket is in the test's directory: nothing
// of the machine's libvirt is read or changed, and nothing is left behind.
// Domains are of type qemu (TCG here):
//   - plans/libvirt-quick.toml: transient domains nrt/rt x host stress,
//     every cell measured, vCPU 1 read back SCHED_FIFO on its CPU;
//   - an existing domain defined by the test, measured by name: running and
//     shut off (start = true), left as found (dumpxml --inactive unchanged);
//     a shut-off one without start = true is refused (exit 3);
//   - SIGINT mid-cell: 130; libvirtd killed mid-cell: 3; a guest that
//     never boots: 3; none leaves a domain in `virsh list --all` or a QEMU
//     running;
//   - `[[gate]] lint = "error"` on a measured cell with lint errors: 1;
//   - access = "guest-exec": a transient domain from the image with qemu-ga,
//     cyclictest and stress-ng in the guest through guest-exec; the user's
//     running domain with the QEMU guest agent's channel, left as found;
//   - access = "ssh": the user's running domain with an SSH server (build-guest
//     --ssh: dropbear) on QEMU's user networking, a port of 127.0.0.1
//     forwarded to its port 22, measured over ssh and left as found.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <csignal>
#include <fstream>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "cli_fixture.hpp"

using namespace vmlat;
using namespace vmlat::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The script that makes the namespace and execs libvirtd ($1: the daemon's
// directory). Fixed text: no value of a plan reaches it.
constexpr const char* kDaemonScript = R"(set -e
d="$1"
for m in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p "$d/${m%%:*}" "${m#*:}"
  mount --bind "$d/${m%%:*}" "${m#*:}"
done
exec libvirtd -f "$d/libvirtd.conf" -p "$d/run/libvirtd.pid"
)";

struct RunResult {
  int code = -1;
  std::string out, err;
};

// A program run to its end (argv, no shell).
RunResult run(std::vector<std::string> argv, const fs::path& scratch, std::chrono::seconds timeout = 120s) {
  static int n = 0;
  const auto out = scratch / ("cmd-" + std::to_string(++n) + ".out"), err = scratch / ("cmd-" + std::to_string(n) + ".err");
  auto p = Process::spawn(ProcessSpec{argv, {}, out, err, {}});
  auto status = p.wait(Clock::now() + timeout, false);
  if (status.timed_out) p.stop(2s);
  return {status.timed_out ? -1 : status.exit_code, read_file(out), read_file(err)};
}

class PrivateLibvirtd {
 public:
  explicit PrivateLibvirtd(const fs::path& scratch) : scratch_(scratch) {
    char tmpl[] = "/tmp/vmlat-lvd-XXXXXX";  // short: socket paths
    dir_ = ::mkdtemp(tmpl);
    for (const char* d : {"etc", "run", "lib", "log", "cache", "sock"}) fs::create_directories(dir_ / d);
    std::ofstream(dir_ / "etc" / "qemu.conf") << "user = \"root\"\ngroup = \"root\"\ncgroup_controllers = [ ]\n"
                                                 "stdio_handler = \"file\"\nnamespaces = [ ]\nsecurity_driver = \"none\"\n"
                                                 "remember_owner = 0\n";
    std::ofstream(dir_ / "libvirtd.conf") << "unix_sock_dir = \"" << (dir_ / "sock").string()
                                          << "\"\nunix_sock_rw_perms = \"0700\"\nauth_unix_rw = \"none\"\n"
                                             "auth_unix_ro = \"none\"\nlog_outputs = \"3:file:"
                                          << (dir_ / "libvirtd.log").string() << "\"\n";
    start();
  }
  ~PrivateLibvirtd() {
    // Whatever a failed test left: no domain outlives its daemon.
    if (running_) {
      std::istringstream names(virsh({"list", "--all", "--name"}).out);
      for (std::string name; std::getline(names, name);)
        if (!name.empty()) {
          virsh({"destroy", name});
          virsh({"undefine", name});
        }
    }
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start() {
    daemon_ = Process::spawn(ProcessSpec{{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", kDaemonScript,
                                          "sh", dir_.string()},
                                         {},
                                         dir_ / "daemon.out",
                                         dir_ / "daemon.out",
                                         {}});
    running_ = true;
    for (int i = 0; i < 300; ++i) {
      if (fs::exists(dir_ / "sock" / "libvirt-sock") && virsh({"version"}).code == 0) {
        // The daemon's mount namespace, which its QEMUs share: it tells this
        // test's QEMUs from those of other libvirtds (another test running).
        std::error_code ec;
        mount_ns_ = fs::read_symlink("/proc/" + std::to_string(daemon_.pid()) + "/ns/mnt", ec).string();
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "libvirtd did not come up: " << read_file(dir_ / "daemon.out") << read_file(dir_ / "libvirtd.log");
  }
  void stop() {
    if (running_) daemon_.stop(10s);
    running_ = false;
  }
  void kill9() {
    ::kill(daemon_.pid(), SIGKILL);
    daemon_.stop(2s);
    running_ = false;
  }

  const std::string& mount_ns() const { return mount_ns_; }
  std::string uri() const { return "qemu:///system?socket=" + (dir_ / "sock" / "libvirt-sock").string(); }
  RunResult virsh(std::vector<std::string> args) const {
    args.insert(args.begin(), {"virsh", "-q", "-c", uri()});
    return run(args, scratch_);
  }
  // `virsh list --all`, without blank lines.
  std::string list_all() const { return trim_all(virsh({"list", "--all", "--name"}).out); }
  const fs::path& dir() const { return dir_; }

 private:
  static std::string trim_all(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
    return s;
  }
  fs::path scratch_, dir_;
  Process daemon_;
  std::string mount_ns_;
  bool running_ = false;
};

// QEMU processes whose command line mentions `text`, in the mount namespace
// `ns` (this test's libvirtd's).
int qemus_mentioning(const std::string& text, const std::string& ns) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_file(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    std::error_code ec;
    if (cmd.find("qemu-system") != std::string::npos && cmd.find(text) != std::string::npos &&
        fs::read_symlink(e.path() / "ns" / "mnt", ec).string() == ns)
      ++n;
  }
  return n;
}

class LibvirtE2E : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    // Not a subreaper: libvirtd daemonizes QEMU, whose exit only init reaps;
    // a subreaper test would keep it a zombie that libvirtd waits on.
    // A lock directory of the test's own: these tests check correctness, not
    // latency, and need not queue behind other measurements of this host.
    fs::create_directories(dir_ / "lock");
    ::setenv("VMLAT_LOCK_DIR", (dir_ / "lock").c_str(), 1);
    daemon_ = std::make_unique<PrivateLibvirtd>(dir_);
  }
  void TearDown() override {
    EXPECT_EQ(daemon_->list_all(), "") << "a domain was left behind";
    const std::string ns = daemon_->mount_ns();
    daemon_.reset();
    // libvirt hands QEMU its sockets and files as descriptors: the domain's
    // name (-name guest=NAME) is what its command line shows.
    EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", ns) + qemus_mentioning("guest=user-domain", ns), 0) << "a QEMU was left behind";
    EXPECT_EQ(count_leftovers(), 0) << "probes or stress-ng left behind";
    CliTest::TearDown();
  }

  std::string plan(const std::string& backend_table, const std::string& duration = "2s", const std::string& boot = "120s") {
    return R"([plan]
name = "libvirt-test"
duration = ")" + duration + R"("
period = "1ms"
results = "results"

[timeouts]
prepare = "15m"
boot = ")" + boot + R"("

[matrix]
backend = ["libvirt"]
workload = ["none"]
probe = ["native"]

[backend.libvirt]
uri = ")" + daemon_->uri() + "\"\n" + backend_table + R"(

[probe.native]
plugin = "cyclic"
engine = "native"
)";
  }

  json only_cell_result() {
    auto run_dir = only_run_dir();
    auto run = json::parse(read_file(run_dir / "run.json"));
    EXPECT_EQ(run["cells"].size(), 1u);
    if (run["cells"].empty()) return nullptr;
    return json::parse(read_file(run_dir / run["cells"][0]["dir"].get<std::string>() / "result.json"));
  }

  // The guest image as build-guest resolves it (the cache the plugin uses).
  json guest_image(bool qemu_ga = false, bool ssh = false) {
    std::vector<std::string> argv{VMLAT_SOURCE_DIR "/plugins/common/guest/images/build-guest", "--flavour", "nrt", "--cache",
                                  "/var/cache/vmlat/guests", "--print-json", "--agent", VMLAT_BINARY_DIR "/libexec/vmlat-guest-agent",
                                  "--probe", VMLAT_BINARY_DIR "/libexec/vmlat-probe"};
    if (qemu_ga) argv.push_back("--qemu-ga");
    if (ssh) argv.push_back("--ssh");
    auto r = run(argv, dir_, 900s);  // a first build of the image takes minutes
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }

  // A persistent domain as a user would have it: the vmlat agent's channel at
  // a path of the test's, no RT tuning.
  std::string define_user_domain(const std::string& name, bool qemu_ga = false) {
    const json g = guest_image(qemu_ga);
    // With qemu-ga: the QEMU guest agent's channel instead of vmlat's (the
    // image's /init then serves through qemu-ga only).
    const std::string channel = qemu_ga ? "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                                        : "<channel type='unix'><source mode='bind' path='" +
                                              (daemon_->dir() / "user-chan.sock").string() +
                                              "'/><target type='virtio' name='org.vmlat.0'/></channel>";
    const std::string xml = "<domain type='qemu'><name>" + name +
                            "</name><memory unit='MiB'>256</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type>"
                            "<kernel>" + g["vmlinuz"].get<std::string>() + "</kernel><initrd>" +
                            g["initramfs"].get<std::string>() +
                            "</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os><devices>" + channel +
                            "</devices></domain>";
    std::ofstream(dir_ / "user.xml") << xml;
    auto r = daemon_->virsh({"define", (dir_ / "user.xml").string()});
    EXPECT_EQ(r.code, 0) << r.err;
    return name;
  }

  std::unique_ptr<PrivateLibvirtd> daemon_;
};

// Waits until the cell's log says the probe runs in the guest.
bool wait_measuring(const fs::path& results) {
  for (int i = 0; i < 3000; ++i) {
    std::this_thread::sleep_for(100ms);
    if (!fs::exists(results)) continue;
    for (const auto& run : fs::directory_iterator(results)) {
      if (!run.is_directory() || run.is_symlink() || !fs::exists(run.path() / "cells")) continue;
      for (const auto& cell : fs::directory_iterator(run.path() / "cells"))
        if (read_file(cell.path() / "cell.log").find("on guest") != std::string::npos) return true;
    }
  }
  return false;
}

}  // namespace

TEST_F(LibvirtE2E, QuickPlanMeasuresEveryCell) {
  std::string text = read_file(VMLAT_SOURCE_DIR "/plans/libvirt-quick.toml");
  const std::string from = "uri = \"qemu:///system\"";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "uri = \"" + daemon_->uri() + "\"");
  auto r = vmlat({"run", write_plan("plan.toml", text).string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read_file(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 4u);
  for (const auto& c : run["cells"]) {
    auto result = json::parse(read_file(run_dir / c["dir"].get<std::string>() / "result.json"));
    EXPECT_EQ(result["status"], "measured") << result.dump(1).substr(0, 3000);
    const json& b = result["facts"]["backend"];
    EXPECT_EQ(b["domain"]["mode"], "transient");
    EXPECT_EQ(b["libvirt"]["libvirt"].get<std::string>().substr(0, 2), "9.");
    EXPECT_FALSE(b["domain"]["xml"].get<std::string>().empty());
    // vCPU 1 as libvirt set it up, read back from the kernel.
    bool fifo_vcpu = false;
    for (const auto& t : b["threads"])
      if (t["role"] == "vcpu" && t["vcpu"] == 1) {
        EXPECT_EQ(t["state"]["policy"], "SCHED_FIFO") << t.dump();
        EXPECT_EQ(t["state"]["rt_priority"], 1);
        EXPECT_EQ(t["state"]["cpus"], "1");
        EXPECT_GE(t["schedstat"]["wait_ns"].get<long long>(), 0);
        fifo_vcpu = true;
      }
    EXPECT_TRUE(fifo_vcpu) << b["threads"].dump();
    // The vCPU threads' host-side evidence, with the guest's clock mapped onto the host's.
    const json& ev = b["host_evidence"];
    EXPECT_GT(ev.value("samples", 0), 10) << ev.dump();
    EXPECT_TRUE(ev["clock"].is_object()) << ev.dump();
    EXPECT_NE(ev.value("vm_exits", "").find("TCG"), std::string::npos) << ev.dump();
    EXPECT_NE(result["artifacts"].dump().find("host-evidence.jsonl"), std::string::npos) << result["artifacts"].dump();
    // The lint ran on the live XML: TCG offers no TSC deadline timer, and
    // this host isolates no CPU.
    std::set<std::string> rules;
    for (const auto& f : b["lint"]["findings"]) rules.insert(f["rule"].get<std::string>());
    EXPECT_TRUE(rules.count("tsc-deadline")) << b["lint"].dump();
    EXPECT_TRUE(rules.count("locked")) << "lock_memory = false";
    EXPECT_FALSE(rules.count("vcpusched")) << b["lint"].dump();
    EXPECT_FALSE(rules.count("emulatorpin")) << b["lint"].dump();
    EXPECT_EQ(b["teardown"]["ended_by"], "guest poweroff") << b["teardown"].dump();
  }
  EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", daemon_->mount_ns()), 0);
}

TEST_F(LibvirtE2E, ExistingDomainIsMeasuredAndLeftAsFound) {
  const std::string name = define_user_domain("user-domain");
  const std::string before = daemon_->virsh({"dumpxml", "--inactive", name}).out;
  ASSERT_FALSE(before.empty());

  // Running: measured as it runs, left running.
  ASSERT_EQ(daemon_->virsh({"start", name}).code, 0);
  auto r = vmlat({"run", write_plan("running.toml", plan("domain = \"" + name + "\"")).string(), "--results",
                  (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "measured") << result.dump(1).substr(0, 3000);
  EXPECT_EQ(result["facts"]["backend"]["domain"]["state_before"], "running");
  EXPECT_EQ(result["facts"]["backend"]["domain"]["state_after"], "running");
  EXPECT_EQ(result["facts"]["backend"]["domain"]["definition_unchanged"], true);
  EXPECT_TRUE(result["facts"]["backend"]["lint"]["errors"].get<int>() > 0) << "a domain without RT tuning";
  EXPECT_EQ(daemon_->virsh({"domstate", name}).out.find("running"), 0u);
  EXPECT_EQ(daemon_->virsh({"dumpxml", "--inactive", name}).out, before);
  ASSERT_EQ(daemon_->virsh({"destroy", name}).code, 0);
  fs::remove_all(dir_ / "results");

  // Shut off, without start = true: refused, still shut off.
  r = vmlat({"run", write_plan("off.toml", plan("domain = \"" + name + "\"")).string(), "--results",
             (dir_ / "results").string()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(daemon_->virsh({"domstate", name}).out.find("shut off"), std::string::npos);
  fs::remove_all(dir_ / "results");

  // Shut off, start = true: started, measured, shut off again.
  r = vmlat({"run", write_plan("start.toml", plan("domain = \"" + name + "\"\nstart = true")).string(), "--results",
             (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  result = only_cell_result();
  EXPECT_EQ(result["status"], "measured");
  EXPECT_EQ(result["facts"]["backend"]["domain"]["state_before"], "shut-off");
  EXPECT_EQ(result["facts"]["backend"]["domain"]["state_after"], "shut-off");
  EXPECT_NE(daemon_->virsh({"domstate", name}).out.find("shut off"), std::string::npos);
  EXPECT_EQ(daemon_->virsh({"dumpxml", "--inactive", name}).out, before);
  EXPECT_EQ(daemon_->virsh({"undefine", name}).code, 0);
}

TEST_F(LibvirtE2E, SigintMidCellLeavesNothing) {
  const auto plan_path = write_plan("plan.toml", plan("define = true\nlock_memory = false\nvcpu_pin = \"0-1\"", "60s"));
  auto p = start_vmlat({"run", plan_path.string(), "--results", (dir_ / "results").string()});
  ASSERT_TRUE(wait_measuring(dir_ / "results")) << read_file(dir_ / "bg-stderr");
  EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", daemon_->mount_ns()), 1) << "the domain runs";
  std::this_thread::sleep_for(2s);
  ::kill(p.pid(), SIGINT);
  auto r = finish(p, "bg-", 120s);
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_EQ(daemon_->list_all(), "");
  EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", daemon_->mount_ns()), 0);
  EXPECT_EQ(only_cell_result()["status"], "interrupted");
}

TEST_F(LibvirtE2E, KilledLibvirtdMidCellIsAnInfrastructureError) {
  const auto plan_path = write_plan("plan.toml", plan("define = true\nlock_memory = false\nvcpu_pin = \"0-1\"", "8s"));
  auto p = start_vmlat({"run", plan_path.string(), "--results", (dir_ / "results").string()});
  ASSERT_TRUE(wait_measuring(dir_ / "results")) << read_file(dir_ / "bg-stderr");
  daemon_->kill9();
  auto r = finish(p, "bg-", 180s);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", daemon_->mount_ns()), 0) << "vmlat ends the QEMU of the domain it started";
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "infra-error");
  EXPECT_NE(result.dump().find("connection to"), std::string::npos) << result.dump(1).substr(0, 3000);
  // A fresh daemon finds no domain (transient domains do not outlive theirs).
  daemon_->start();
}

TEST_F(LibvirtE2E, LintGateFailsOnTheDomainsErrors) {
  // TCG offers no TSC deadline timer and this host isolates no CPU: the
  // transient domain's lint has errors, which `lint = "error"` turns into a
  // failed gate (exit 1) on a measured cell.
  std::string text = plan("define = true\nlock_memory = false\nvcpu_pin = \"0-1\"");
  text += "\n[[gate]]\nlint = \"error\"\n";
  auto r = vmlat({"run", write_plan("plan.toml", text).string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 1) << r.err;
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "measured");
  ASSERT_EQ(result["gates"].size(), 1u) << result["gates"].dump();
  const json& g = result["gates"][0];
  EXPECT_EQ(g["stat"], "lint");
  EXPECT_EQ(g["verdict"], "fail");
  EXPECT_EQ(g["findings"], result["facts"]["backend"]["lint"]["errors"]);
  EXPECT_NE(g["message"].get<std::string>().find("tsc-deadline"), std::string::npos) << g.dump();
}

TEST_F(LibvirtE2E, FailedBootIsAnInfrastructureErrorAndLeavesNothing) {
  // A "kernel" that is no kernel: QEMU refuses it, or the guest never says
  // hello within the boot timeout; either way the cell is not measured.
  std::ofstream(dir_ / "junk-kernel") << std::string(4096, 'k');
  std::ofstream(dir_ / "junk-initrd") << std::string(4096, 'i');
  const std::string table = "define = true\nlock_memory = false\nvcpu_pin = \"0-1\"\nkernel = \"" +
                            (dir_ / "junk-kernel").string() + "\"\ninitrd = \"" + (dir_ / "junk-initrd").string() + "\"";
  auto r = vmlat({"run", write_plan("plan.toml", plan(table, "2s", "20s")).string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 3) << r.err;
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "infra-error");
  EXPECT_EQ(result["error_phase"], "boot") << result.dump(1).substr(0, 2000);
  EXPECT_EQ(daemon_->list_all(), "");
  EXPECT_EQ(qemus_mentioning("guest=vmlat-libvirt-", daemon_->mount_ns()), 0);
}

TEST_F(LibvirtE2E, GuestExecMeasuresATransientDomainThroughTheQemuGuestAgent) {
  // cyclictest in the guest and stress-ng beside it there, both through
  // guest-exec (a job: started, stopped with its process group).
  std::string text = plan("define = true\naccess = \"guest-exec\"\nlock_memory = false\nvcpu_pin = \"0-1\"", "3s");
  text.replace(text.find("workload = [\"none\"]"), std::string("workload = [\"none\"]").size(), "workload = [\"guest-stress\"]");
  text.replace(text.find("probe = [\"native\"]"), std::string("probe = [\"native\"]").size(), "probe = [\"cyclictest\"]");
  text += "\n[probe.cyclictest]\nplugin = \"cyclic\"\nengine = \"cyclictest\"\n"
          "\n[workload.guest-stress]\nplugin = \"stress\"\nwhere = \"guest\"\npreset = \"none\"\nstressors = { cpu = 1 }\n";
  auto r = vmlat({"run", write_plan("plan.toml", text).string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  json result = only_cell_result();
  ASSERT_EQ(result["status"], "measured") << result.dump(1).substr(0, 4000);
  const json& b = result["facts"]["backend"];
  EXPECT_EQ(b["boot"]["access"], "guest-exec") << b["boot"].dump();
  EXPECT_FALSE(b["guest"]["qemu_ga"].value("version", std::string()).empty()) << b["guest"].dump();
  // The domain had the QEMU guest agent's channel and not vmlat's.
  const std::string xml = b["domain"]["xml"].get<std::string>();
  EXPECT_NE(xml.find("org.qemu.guest_agent.0"), std::string::npos);
  EXPECT_EQ(xml.find("org.vmlat.0"), std::string::npos);
  // build-guest's image with qemu-ga, under its own stamps.
  EXPECT_TRUE(fs::exists("/var/cache/vmlat/guests/.stamps-nrt-qga.json"));
  // cyclictest ran in the guest: its samples on both vCPUs, and the guest's own facts.
  EXPECT_GT(result["merged"]["stats"]["samples"].get<long>(), 1000) << result["merged"].dump().substr(0, 1000);
  EXPECT_EQ(result["per_cpu"].size(), 2u) << "cyclictest on both vCPUs";
  EXPECT_EQ(result["facts"]["probe"].value("engine", std::string()), "cyclictest") << result["facts"]["probe"].dump().substr(0, 500);
  EXPECT_NE(b["guest"]["system"].dump().find("vmlat-guest"), std::string::npos) << b["guest"]["system"].dump();
  EXPECT_EQ(b["teardown"]["ended_by"], "virDomainDestroy") << b["teardown"].dump();
  EXPECT_GT(b["host_evidence"].value("samples", 0), 10) << b["host_evidence"].dump();
}

TEST_F(LibvirtE2E, GuestExecMeasuresTheUsersRunningDomainAndLeavesItAsFound) {
  const std::string name = define_user_domain("user-domain-qga", /*qemu_ga=*/true);
  const std::string before = daemon_->virsh({"dumpxml", "--inactive", name}).out;
  ASSERT_FALSE(before.empty());
  ASSERT_EQ(daemon_->virsh({"start", name}).code, 0);
  auto r = vmlat({"run", write_plan("running.toml", plan("domain = \"" + name + "\"\naccess = \"guest-exec\"")).string(),
                  "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "measured") << result.dump(1).substr(0, 3000);
  const json& b = result["facts"]["backend"];
  EXPECT_EQ(b["boot"]["access"], "guest-exec");
  EXPECT_EQ(b["domain"]["state_after"], "running");
  EXPECT_EQ(b["domain"]["definition_unchanged"], true);
  EXPECT_EQ(daemon_->virsh({"domstate", name}).out.find("running"), 0u);
  EXPECT_EQ(daemon_->virsh({"dumpxml", "--inactive", name}).out, before);
  // The guest still answers (vmlat ended nothing of it): the agent's ping.
  EXPECT_EQ(daemon_->virsh({"qemu-agent-command", name, "{\"execute\":\"guest-ping\"}"}).code, 0);
  ASSERT_EQ(daemon_->virsh({"destroy", name}).code, 0);
  EXPECT_EQ(daemon_->virsh({"undefine", name}).code, 0);
}

// A TCP port of 127.0.0.1 free now (the kernel's choice).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

TEST_F(LibvirtE2E, SshMeasuresTheUsersDomainThroughItsSshServer) {
  // root's key for the guest: its public half on the guest kernel's command line.
  ASSERT_EQ(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / "key").string()}, dir_).code, 0);
  std::istringstream pub(read_file(dir_ / "key.pub"));
  std::string type, key;
  pub >> type >> key;
  ASSERT_EQ(type, "ssh-ed25519");
  const json g = guest_image(false, /*ssh=*/true);
  ASSERT_TRUE(g["contents"]["ssh"].value("included", false)) << g.dump();
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string name = "user-domain-ssh";
  // libvirt 9.0 as Debian builds it has no passt backend (<portForward>):
  // QEMU's own user networking with a host forward, as qemu:commandline.
  const std::string xml =
      "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>" + name + "</name><memory unit='MiB'>256</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type>"
      "<kernel>" + g["vmlinuz"].get<std::string>() + "</kernel><initrd>" + g["initramfs"].get<std::string>() +
      "</initrd><cmdline>console=ttyS0 panic=-1 quiet vmlat.ssh_key=" + key + "</cmdline></os><devices>"
      "<serial type='file'><source path='" + (dir_ / "console.log").string() + "'/><target port='0'/></serial>"
      "</devices><qemu:commandline><qemu:arg value='-netdev'/><qemu:arg value='user,id=vmlatnet,hostfwd=tcp:127.0.0.1:" +
      std::to_string(port) + "-:22'/><qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=vmlatnet,addr=0x10'/>"
      "</qemu:commandline></domain>";
  std::ofstream(dir_ / "user.xml") << xml;
  auto defined = daemon_->virsh({"define", (dir_ / "user.xml").string()});
  ASSERT_EQ(defined.code, 0) << defined.err;
  const std::string before = daemon_->virsh({"dumpxml", "--inactive", name}).out;
  auto started = daemon_->virsh({"start", name});
  ASSERT_EQ(started.code, 0) << started.err << read_file(daemon_->dir() / "libvirtd.log").substr(0, 3000);

  const std::string table = "domain = \"" + name + "\"\naccess = \"ssh\"\nssh_address = \"127.0.0.1\"\nssh_port = " +
                            std::to_string(port) + "\nssh_identity_file = \"" + (dir_ / "key").string() +
                            "\"\nssh_known_hosts = \"" + (dir_ / "known_hosts").string() + "\"";
  auto r = vmlat({"run", write_plan("ssh.toml", plan(table)).string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 0) << r.err << "\nconsole:\n" << read_file(dir_ / "console.log");
  json result = only_cell_result();
  EXPECT_EQ(result["status"], "measured") << result.dump(1).substr(0, 3000);
  const json& b = result["facts"]["backend"];
  EXPECT_EQ(b["boot"]["access"], "ssh") << b["boot"].dump();
  EXPECT_NE(b["guest"].value("ssh", std::string()).find("root@127.0.0.1:" + std::to_string(port)), std::string::npos)
      << b["guest"].dump();
  EXPECT_GT(result["merged"]["stats"]["samples"].get<long>(), 100);
  EXPECT_NE(b["guest"]["system"].dump().find("vmlat-guest"), std::string::npos) << b["guest"]["system"].dump();
  // The guest's host key was learnt into the plan's known_hosts (hashed
  // where ssh_config says HashKnownHosts: ssh-keygen -F finds it either way).
  EXPECT_EQ(run({"ssh-keygen", "-F", "[127.0.0.1]:" + std::to_string(port), "-f", (dir_ / "known_hosts").string()}, dir_).code, 0)
      << read_file(dir_ / "known_hosts");
  EXPECT_EQ(b["domain"]["state_after"], "running");
  EXPECT_EQ(b["domain"]["definition_unchanged"], true);
  EXPECT_EQ(daemon_->virsh({"dumpxml", "--inactive", name}).out, before);
  ASSERT_EQ(daemon_->virsh({"destroy", name}).code, 0);
  EXPECT_EQ(daemon_->virsh({"undefine", name}).code, 0);
}
