// The Xen virtual lab end to end (CTest label xen-lab): one lab for the
// whole suite (the tests run in order, in one process), booted with the
// installed vmlat tree of this build in Dom0.
//   - Dom0 is an SSH host: xl info (Xen 4.17, HVM capable), only Domain-0
//   - vmlat runs in Dom0 (a host-backend cell with cyclictest), and its run
//     directory comes back with scp
//   - the lab is a host of vmlat's own runner: a plan with the [hosts] table
//     xen-lab wrote runs its cell in Dom0 (vmlat run-cell over ssh)
//   - the generated xl configs of pv, pvh and hvm pass `xl -N create`
//   - a PV domU boots, runs a command through the guest agent over its
//     console, and is destroyed
//   - SIGINT during a domU command, and a domU that never comes up (boot
//     timeout, console log kept), both leave no domain in `xl list`
//   - plans/xen-lab.toml with the lab's inventory: PV and PVH domUs boot,
//     cyclictest runs in them, histograms and xl info facts come back, the
//     domains are destroyed; stress-ng in Dom0 while the PV stress cell's domU
//     runs; the plan once more only after a triple fault Xen logged, every
//     such retry printed ("xen-lab: retries: N"); SIGINT to vmlat mid-cell:
//     exit 130, no domain left; a domU that hangs at boot: the cell an infra
//     error at the boot timeout, console kept
//   - (heavy, VMLAT_XEN_LAB_PVH_STRESS=1) plans/xen-lab-pvh-stress.toml: PVH
//     with stress-ng in Dom0, the same safety net
//   - (heavy, VMLAT_XEN_LAB_HVM=1) plans/xen-lab-hvm.toml: HVM domUs with the
//     device model's threads at SCHED_FIFO, read back from Dom0's /proc
//   - the lab tears down: no QEMU left (also after a boot timeout, and on
//     SIGINT to `xen-lab run`, each with a lab of its own)
// Never asserts that anything is fast: TCG only proves the path works.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include <vmlat/text.hpp>
#include <vmlat/json.hpp>
#include <vmlat/process.hpp>

#include "xl_domain.hpp"

namespace {

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kSource = VMLAT_SOURCE_DIR;
const fs::path kBuild = VMLAT_BINARY_DIR;
const fs::path kXenLab = kSource / "labs/xen/xen-lab";
const std::string kDomu = "/usr/local/libexec/vmlat/vmlat-xen-domu";
const std::string kImage = "/var/cache/vmlat/guests/nrt";


struct Ran {
  int code = -1;
  std::string out, err;
};

fs::path g_dir;  // the suite's scratch directory
fs::path g_lab;  // the lab directory (xen-lab start --dir)
bool g_lab_up = false;
int g_counter = 0;

Ran run(std::vector<std::string> argv, std::chrono::seconds timeout = 600s) {
  const std::string n = std::to_string(g_counter++);
  const fs::path out = g_dir / ("cmd-" + n + ".out"), err = g_dir / ("cmd-" + n + ".err");
  auto p = Process::spawn(ProcessSpec{std::move(argv), {}, out, err, g_dir});
  auto status = p.wait(Clock::now() + timeout, false);
  if (status.timed_out) p.stop(5s);
  return Ran{status.signal ? 128 + status.signal : status.exit_code, slurp(out), slurp(err)};
}

std::vector<std::string> ssh_argv(const std::vector<std::string>& command) {
  std::vector<std::string> argv{"ssh", "-F", (g_lab / "ssh_config").string(), "xen-lab", "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

Ran ssh(const std::vector<std::string>& command, std::chrono::seconds timeout = 600s) {
  return run(ssh_argv(command), timeout);
}

std::vector<std::string> domains() {
  auto r = ssh({"xl", "list"});
  EXPECT_EQ(r.code, 0) << r.err;
  return xen::parse_xl_list(r.out);
}

json domu_json(const Ran& r) {
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "vmlat-xen-domu printed no JSON (" << e.what() << "): " << r.out << r.err;
    return json::object();
  }
}

// A QEMU process whose argv names `dir`.
int qemus_of(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = slurp(e.path() / "cmdline");
    for (auto& c : cmdline)
      if (c == '\0') c = ' ';
    if (cmdline.find("qemu-system") != std::string::npos && cmdline.find(dir.string()) != std::string::npos) ++n;
  }
  return n;
}

// xen-lab's own exit paths, each with a lab of its own (before the suite's).
class XenLabExitPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vmlat-xen-lab-exit-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(XenLabExitPaths, ABootThatTimesOutIsAnInfraErrorAndLeavesNoQemu) {
  const auto t0 = Clock::now();
  auto p = Process::spawn(ProcessSpec{{kXenLab.string(), "run", "--dir", (dir_ / "lab").string(), "--boot-timeout", "3",
                                       "--", "true"},
                                      {}, dir_ / "out", dir_ / "err", dir_});
  auto status = p.wait(Clock::now() + 600s, false);
  EXPECT_EQ(status.exit_code, 3) << slurp(dir_ / "err");
  EXPECT_NE(slurp(dir_ / "err").find("not ready within 3s"), std::string::npos) << slurp(dir_ / "err");
  EXPECT_EQ(qemus_of(dir_), 0);
  EXPECT_LT(Clock::now() - t0, 300s) << "the boot timeout, not the test's, ended it";
}

TEST_F(XenLabExitPaths, SigintWhileTheLabRunsACommandLeavesNoQemu) {
  auto p = Process::spawn(ProcessSpec{{kXenLab.string(), "run", "--dir", (dir_ / "lab").string(), "--", "sleep", "600"},
                                      {}, dir_ / "out", dir_ / "err", dir_});
  // Up: lab.json has the time it took, and the command (sleep) runs.
  const auto deadline = Clock::now() + 600s;
  while (Clock::now() < deadline && p.running() &&
         slurp(dir_ / "lab" / "lab.json").find("\"up_s\"") == std::string::npos)
    std::this_thread::sleep_for(500ms);
  ASSERT_NE(slurp(dir_ / "lab" / "lab.json").find("\"up_s\""), std::string::npos) << slurp(dir_ / "err");
  EXPECT_EQ(qemus_of(dir_), 1);
  ::kill(p.pid(), SIGINT);
  auto status = p.wait(Clock::now() + 120s, false);
  EXPECT_EQ(status.exit_code, 130) << slurp(dir_ / "err");
  EXPECT_EQ(qemus_of(dir_), 0);
  EXPECT_NE(slurp(dir_ / "err").find("lab down"), std::string::npos) << slurp(dir_ / "err");
}

class XenLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_dir = fs::temp_directory_path() / ("vmlat-xen-lab-test-" + std::to_string(::getpid()));
    fs::remove_all(g_dir);
    fs::create_directories(g_dir);
    g_lab = g_dir / "lab";
    // Dom0 gets this build, installed as a user would install it.
    auto installed = run({"cmake", "--install", kBuild.string(), "--prefix", (g_dir / "prefix").string()});
    ASSERT_EQ(installed.code, 0) << installed.out << installed.err;
    auto up = run({kXenLab.string(), "start", "--dir", g_lab.string(), "--vmlat-prefix", (g_dir / "prefix").string()},
                  1500s);
    ASSERT_EQ(up.code, 0) << up.err;
    g_lab_up = true;
    const json lab = json::parse(slurp(g_lab / "lab.json"));
    std::cerr << "xen lab up: build " << lab.value("build_s", -1.0) << "s, QEMU start to Dom0 ready "
              << lab.value("qemu_start_to_ready_s", -1.0) << "s, to ssh " << lab.value("qemu_start_to_ssh_s", -1.0)
              << "s\n";
  }
  static void TearDownTestSuite() {
    if (g_lab_up) run({kXenLab.string(), "stop", "--dir", g_lab.string()});
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(g_dir);
  }
  void SetUp() override {
    if (!g_lab_up) GTEST_SKIP() << "the lab did not come up";
  }
};

TEST_F(XenLab, Dom0IsAnSshHostRunningXen417) {
  auto info = ssh({"xl", "info"});
  ASSERT_EQ(info.code, 0) << info.err;
  const json facts = xen::parse_xl_info(info.out);
  EXPECT_EQ(facts.value("xen_version", "").rfind("4.17.", 0), 0u) << info.out;
  EXPECT_NE(facts.value("virt_caps", "").find("hvm"), std::string::npos) << "HVM needs +svm,+npt: " << info.out;
  EXPECT_NE(facts.value("virt_caps", "").find("hap"), std::string::npos) << info.out;
  EXPECT_NE(facts.value("xen_commandline", "").find("dom0_mem=1024M"), std::string::npos) << info.out;
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
  auto who = ssh({"cat", "/sys/hypervisor/guest_type", "/proc/xen/capabilities"});
  EXPECT_EQ(who.out, "PV\ncontrol_d\n") << who.err;
}

TEST_F(XenLab, VmlatRunsInDom0AndItsRunComesBackWithScp) {
  auto version = ssh({"vmlat", "version"});
  ASSERT_EQ(version.code, 0) << version.err;
  auto plugins = ssh({"vmlat", "plugins"});
  ASSERT_EQ(plugins.code, 0) << plugins.err;
  for (const char* p : {"host", "cyclic", "stress", "kvm"})
    EXPECT_NE(plugins.out.find(p), std::string::npos) << p << " not in: " << plugins.out;

  std::ofstream(g_dir / "dom0.toml") << R"([plan]
name = "dom0-host"
duration = "2s"
period = "1ms"
cpus = [0]
[matrix]
backend = ["host"]
[backend.host]
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
)";
  auto copy = run({"scp", "-q", "-F", (g_lab / "ssh_config").string(), (g_dir / "dom0.toml").string(),
                   "xen-lab:/tmp/dom0.toml"});
  ASSERT_EQ(copy.code, 0) << copy.err;
  auto ran = ssh({"vmlat", "run", "/tmp/dom0.toml", "--results", "/tmp/dom0-results"});
  ASSERT_EQ(ran.code, 0) << ran.out << ran.err;
  // The run directory by its name: scp (SFTP) refuses to copy the `latest`
  // symlink recursively ("not a regular file").
  auto latest = ssh({"readlink", "/tmp/dom0-results/latest"});
  ASSERT_EQ(latest.code, 0) << latest.err;
  const std::string run_name = fs::path(latest.out.substr(0, latest.out.find('\n'))).filename().string();
  ASSERT_FALSE(run_name.empty());
  auto back = run({"scp", "-q", "-r", "-F", (g_lab / "ssh_config").string(), "xen-lab:/tmp/dom0-results/" + run_name,
                   (g_dir / "back").string()});
  ASSERT_EQ(back.code, 0) << back.err;
  const fs::path run_dir = g_dir / "back";
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u);
  const json result = json::parse(slurp(run_dir / run_json["cells"][0]["dir"].get<std::string>() / "result.json"));
  EXPECT_EQ(result["status"], "measured") << result.dump(1);
  EXPECT_GT(result["per_cpu"]["0"]["stats"]["samples"].get<long>(), 100);
  EXPECT_EQ(result["facts"]["backend"]["target"]["hostname"], "xen-lab") << result["facts"].dump(1);
}

TEST_F(XenLab, TheLabIsAHostOfVmlatsRunner) {
  // The plan's [hosts] table is the one xen-lab wrote: the lab as any host.
  std::ofstream(g_dir / "on-lab.toml") << R"([plan]
name = "on-the-lab"
duration = "2s"
period = "1ms"
cpus = [0]
[matrix]
backend = ["host"]
host = ["xen_lab"]
[backend.host]
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"

)" << slurp(g_lab / "hosts.toml");
  auto r = run({(kBuild / "vmlat").string(), "run", (g_dir / "on-lab.toml").string(), "--results",
                (g_dir / "runner-results").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const fs::path run_dir = fs::canonical(g_dir / "runner-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u);
  EXPECT_EQ(run_json["cells"][0]["host"], "xen_lab");
  EXPECT_EQ(run_json["cells"][0]["status"], "measured") << run_json["cells"].dump(1);
  // Facts read in Dom0: the runner sees a Xen Dom0 host.
  EXPECT_EQ(run_json["hosts"]["xen_lab"]["hypervisor"]["xen"], "dom0") << run_json["hosts"].dump(1);
  EXPECT_EQ(run_json["hosts"]["xen_lab"]["hostname"], "xen-lab");
  const json result =
      json::parse(slurp(run_dir / run_json["cells"][0]["dir"].get<std::string>() / "result.json"));
  EXPECT_GT(result["per_cpu"]["0"]["stats"]["samples"].get<long>(), 100) << result.dump(1);
  // The cell ran in Xen's control domain: the seed table's Dom0 row, not Host.
  EXPECT_EQ(result["host_facts"]["xen_role"], "dom0") << result["host_facts"].dump(1);
  auto report = run({(kBuild / "vmlat").string(), "report", run_dir.string(), "--format", "json"});
  ASSERT_EQ(report.code, 0) << report.err;
  const json model = json::parse(report.out);
  ASSERT_EQ(model["seed_tables"].size(), 1u) << model["seed_tables"].dump(1);
  const std::string row = model["seed_tables"][0]["rows"][0].get<std::string>();
  EXPECT_EQ(row.rfind("Dom0 (", 0), 0u) << model["seed_tables"].dump(1);
}

TEST_F(XenLab, GeneratedConfigsOfAllThreeTypesPassXlDryRun) {
  for (const std::string type : {"pv", "pvh", "hvm"}) {
    auto r = ssh({kDomu, "check", "--type", type, "--image", kImage, "--name", "vmlat-check-" + type});
    ASSERT_EQ(r.code, 0) << type << ": " << r.out << r.err;
    const json doc = domu_json(r);
    const json& parsed = doc["xl_dry_run"];
    EXPECT_EQ(parsed["c_info"]["type"], type) << parsed.dump(1);
    EXPECT_EQ(parsed["c_info"]["name"], "vmlat-check-" + type);
    // What xl understood is what was generated.
    const std::string kernel = parsed["b_info"].value("kernel", "");
    EXPECT_EQ(kernel, kImage + (type == "hvm" ? "/vmlinuz" : "/vmlinux")) << parsed["b_info"].dump(1);
    EXPECT_NE(parsed["b_info"].value("cmdline", "").find("vmlat.port=/dev/hvc0"), std::string::npos);
  }
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"}) << "xl -N create must not create anything";
}

TEST_F(XenLab, PvDomuRunsACommandThroughTheAgent) {
  auto r = ssh({kDomu, "run", "--type", "pv", "--image", kImage, "--name", "vmlat-test-pv", "--work-dir",
                "/tmp/test-pv", "--", "cat", "/sys/hypervisor/guest_type"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json doc = domu_json(r);
  EXPECT_EQ(doc["result"]["exit_code"], 0);
  EXPECT_EQ(doc["result"]["stdout"], "PV\n") << doc.dump(1);
  EXPECT_EQ(doc["hello"]["port"], "/dev/hvc0");
  EXPECT_TRUE(doc["hello"]["probe"].get<bool>()) << "the image has vmlat-probe";
  EXPECT_EQ(doc["teardown"]["agent_bye"], true) << doc["teardown"].dump();
  EXPECT_EQ(doc["teardown"]["gone"], true) << doc["teardown"].dump();
  std::cerr << "pv domU: xl create " << doc["timings"]["xl_create_s"] << "s, create to hello "
            << doc["timings"]["create_to_hello_s"] << "s, command " << doc["timings"]["command_s"] << "s\n";
  // The console log is the guest's console: the kernel and /init, no frames.
  auto console = ssh({"cat", "/tmp/test-pv/console.log"});
  EXPECT_NE(console.out.find("vmlat-init:"), std::string::npos) << console.out;
  EXPECT_EQ(console.out.find("@@VMLAT1"), std::string::npos) << console.out;
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

TEST_F(XenLab, SigintDuringADomuCommandLeavesNoDomain) {
  // The remote shell records the tool's pid, then becomes it.
  auto job = Process::spawn(ProcessSpec{
      ssh_argv({"echo $$ >/tmp/sigint.pid; exec", kDomu, "run", "--type", "pv", "--image", kImage, "--name",
                "vmlat-test-sigint", "--work-dir", "/tmp/test-sigint", "--", "sleep", "600"}),
      {}, g_dir / "sigint.out", g_dir / "sigint.err", g_dir});
  const auto deadline = Clock::now() + 300s;
  while (slurp(g_dir / "sigint.err").find("running sleep") == std::string::npos && Clock::now() < deadline &&
         job.running())
    std::this_thread::sleep_for(500ms);
  ASSERT_NE(slurp(g_dir / "sigint.err").find("running sleep"), std::string::npos) << slurp(g_dir / "sigint.err");
  EXPECT_EQ(domains(), (std::vector<std::string>{"Domain-0", "vmlat-test-sigint"}));
  auto kill = ssh({"kill", "-INT", "$(cat /tmp/sigint.pid)"});
  EXPECT_EQ(kill.code, 0) << kill.err;
  auto status = job.wait(Clock::now() + 120s, false);
  EXPECT_EQ(status.exit_code, 130) << slurp(g_dir / "sigint.out") << slurp(g_dir / "sigint.err");
  const json doc = json::parse(slurp(g_dir / "sigint.out"));
  EXPECT_TRUE(doc["result"]["interrupted"].get<bool>()) << doc.dump(1);
  EXPECT_EQ(doc["teardown"]["gone"], true) << doc["teardown"].dump();
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

TEST_F(XenLab, DomuThatNeverComesUpIsAnInfraErrorAtTheBootTimeout) {
  // A shell instead of /init: the kernel boots, the agent never starts.
  auto r = ssh({kDomu, "run", "--type", "pv", "--image", kImage, "--name", "vmlat-test-hang", "--work-dir",
                "/tmp/test-hang", "--append", "rdinit=/bin/sh", "--boot-timeout-s", "30", "--", "true"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  const json doc = domu_json(r);
  EXPECT_NE(doc.value("error", "").find("did not come up within 30s"), std::string::npos) << doc.dump(1);
  EXPECT_EQ(doc["teardown"]["gone"], true) << doc["teardown"].dump();
  // What the console showed is kept: here busybox's shell, waiting on hvc0.
  auto console = ssh({"cat", "/tmp/test-hang/console.log"});
  EXPECT_NE(console.out.find("built-in shell (ash)"), std::string::npos) << console.out;
  EXPECT_EQ(console.out.find("@@VMLAT1"), std::string::npos) << "no frame is sent to a guest without agent";
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

// What Dom0 shows at one moment: the domains and the stress-ng processes.
struct Dom0Snapshot {
  std::vector<std::string> domains;
  int stress_ng = 0;
};

Dom0Snapshot dom0_snapshot() {
  // /proc rather than pgrep: busybox's has no -c. stress-ng's workers are
  // named stress-ng-<stressor>.
  auto r = ssh({"xl list; echo @@; cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^stress-ng' || true"}, 60s);
  Dom0Snapshot s;
  const auto at = r.out.find("@@\n");
  if (r.code != 0 || at == std::string::npos) return s;
  s.domains = xen::parse_xl_list(r.out.substr(0, at));
  try {
    s.stress_ng = std::stoi(r.out.substr(at + 3));
  } catch (...) {
  }
  return s;
}

// CPU 0's histogram: samples, and bucket counts + overflows adding up to them.
void expect_histogram(const json& result) {
  const json& cpu0 = result["per_cpu"]["0"];
  const long samples = cpu0["stats"]["samples"].get<long>();
  EXPECT_GT(samples, 10) << cpu0.dump();
  long counted = cpu0["histogram"]["overflows"].get<long>();
  for (const auto& b : cpu0["histogram"]["buckets"]) counted += b[1].get<long>();
  EXPECT_EQ(counted, samples) << cpu0.dump();
}

json cell_result(const fs::path& run_dir, const json& cell) {
  return json::parse(slurp(run_dir / cell["dir"].get<std::string>() / "result.json"));
}

// One run of a plan (plans/xen-lab*.toml) in the lab, Dom0 watched while it runs.
struct LabPlanRun {
  ExitStatus status;
  std::set<std::string> seen_domains, stress_with;
};

LabPlanRun run_lab_plan(const std::string& plan, const fs::path& results, const std::vector<std::string>& extra = {}) {
  // The plan as a user runs it: the lab's inventory, no [hosts].
  const auto t0 = Clock::now();
  std::vector<std::string> argv{(kBuild / "vmlat").string(), "run", (kSource / plan).string(), "--inventory",
                                (g_lab / "inventory.ini").string(), "--results", results.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto job = Process::spawn(ProcessSpec{argv, {}, g_dir / "plan.out", g_dir / "plan.err", g_dir});
  // Watch Dom0 while it runs: stress-ng must be there while a stress cell's
  // domU is (the probe runs between the workload's start and stop).
  LabPlanRun run;
  while (job.running() && Clock::now() - t0 < 1200s) {
    const auto snap = dom0_snapshot();
    for (const auto& d : snap.domains) {
      if (d == "Domain-0") continue;
      run.seen_domains.insert(d);
      if (snap.stress_ng > 0) run.stress_with.insert(d);
    }
    std::this_thread::sleep_for(1s);
  }
  run.status = job.wait(Clock::now() + 60s, false);
  if (run.status.timed_out) job.stop(5s);
  std::cerr << plan << ": " << std::chrono::duration<double>(Clock::now() - t0).count() << "s\n";
  return run;
}

// The cells of a run whose domU triple-faulted: Xen's own log (the
// backend keeps `xl dmesg` as xl-dmesg.txt when a domain vanished). The
// PVH domU under Dom0 stress did so in 4 of 7 CI runs, an open finding
// (plugins/common/xen/README.md, "Triple faults"); kept as the one reason to run
// a plan once more, and every such retry is reported.
// xl dmesg is Xen's whole ring: only a cell whose own domain (domid in its
// facts) is named in a "dN... Triple fault" line counts.
bool xen_logged_triple_fault(const std::string& xl_dmesg, long domid) {
  const std::string who = " d" + std::to_string(domid) + "v";
  std::istringstream in(xl_dmesg);
  for (std::string line; std::getline(in, line);)
    if (line.find("Triple fault") != std::string::npos && line.find(who) != std::string::npos) return true;
  return false;
}

std::vector<std::string> triple_faulted(const fs::path& results) {
  std::vector<std::string> cells;
  std::error_code ec;
  const fs::path run_dir = fs::canonical(results / "latest", ec);
  if (ec) return cells;
  for (const auto& e : fs::directory_iterator(run_dir / "cells", ec)) {
    if (!fs::exists(e.path() / "xl-dmesg.txt")) continue;
    long domid = -1;
    try {
      domid = json::parse(slurp(e.path() / "result.json"))["facts"]["backend"]["domain"].value("domid", -1L);
    } catch (const std::exception&) {
    }
    if (domid >= 0 && xen_logged_triple_fault(slurp(e.path() / "xl-dmesg.txt"), domid))
      cells.push_back(e.path().filename().string());
  }
  return cells;
}

// A plan run with the safety net, counted: the plan once more, once, and only
// when Xen says a cell's domU triple-faulted. The count and the cells go to
// the test's output as "xen-lab: retries: N" (ci/test prints that line from
// CTest's log, passed or not) and to the test's XML properties.
LabPlanRun run_lab_plan_with_retry(const std::string& plan, const fs::path& results,
                                   const std::vector<std::string>& extra = {}) {
  auto run = run_lab_plan(plan, results, extra);
  int retries = 0;
  std::string retried_for;
  if (run.status.exit_code == 3) {
    if (auto faulted = triple_faulted(results); !faulted.empty()) {
      ++retries;
      for (const auto& c : faulted) retried_for += (retried_for.empty() ? "" : ", ") + c;
      std::cerr << "xen-lab: a domU triple-faulted (Xen's log, xl-dmesg.txt) in " << retried_for
                << "; running " << plan << " once more\n";
      const fs::path faulted_dir = results.string() + "-faulted", again = results.string() + "-again";
      run = run_lab_plan(plan, again, extra);
      fs::rename(results, faulted_dir);
      fs::rename(again, results);
    }
  }
  std::cout << "xen-lab: retries: " << retries << (retries ? " (triple fault in " + retried_for + ")" : "")
            << " [" << plan << "]" << std::endl;
  ::testing::Test::RecordProperty("xen_lab_retries", retries);
  if (retries) ::testing::Test::RecordProperty("xen_lab_retried_for", "triple fault in " + retried_for);
  return run;
}

TEST_F(XenLab, XenLabPlanRunsPvAndPvhDomusWithTheirHistogramsAndXenFacts) {
  const auto run = run_lab_plan_with_retry("plans/xen-lab.toml", g_dir / "xen-lab-results");
  const auto& status = run.status;
  const auto& seen_domains = run.seen_domains;
  const auto& stress_with = run.stress_with;
  ASSERT_EQ(status.exit_code, 0) << slurp(g_dir / "plan.out") << slurp(g_dir / "plan.err");
  const fs::path run_dir = fs::canonical(g_dir / "xen-lab-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 3u) << run_json["cells"].dump(1);
  int with_stress = 0;
  for (const auto& cell : run_json["cells"]) {
    EXPECT_EQ(cell["host"], "xen_lab");
    ASSERT_EQ(cell["status"], "measured") << cell.dump(1);
    const json result = cell_result(run_dir, cell);
    const json& backend = result["facts"]["backend"];
    // A histogram from the domU's cyclictest, consistent with its count (how
    // many samples a 3s cell gets under a loaded TCG varies: 60 to 3000).
    expect_histogram(result);
    // Xen's facts, read in Dom0 with xl info.
    EXPECT_EQ(backend["xen"].value("xen_version", "").rfind("4.17.", 0), 0u) << backend.dump(1);
    EXPECT_FALSE(backend["xen"].value("xen_scheduler", "").empty()) << backend["xen"].dump(1);
    EXPECT_NE(backend["xen"].value("xen_commandline", "").find("dom0_mem="), std::string::npos);
    const std::string type = cell["axes"]["backend"] == "xen-pvh" ? "pvh" : "pv";
    EXPECT_EQ(backend["type"], type);
    // The probe ran in a domU of that type (the guest's own view).
    EXPECT_EQ(backend["guest"]["hello"]["port"], "/dev/hvc0");
    EXPECT_EQ(result["facts"]["backend"]["guest"]["system"]["hostname"].is_string(), true);
    // The domain was there, and was destroyed.
    const std::string name = backend["domain"].value("name", "");
    EXPECT_TRUE(seen_domains.count(name)) << name << " never in xl list";
    EXPECT_EQ(backend["teardown"]["gone"], true) << backend["teardown"].dump();
    EXPECT_TRUE(fs::exists(run_dir / cell["dir"].get<std::string>() / "xl.cfg"));
    EXPECT_NE(slurp(run_dir / cell["dir"].get<std::string>() / "xl.cfg").find("type = \"" + type + "\""),
              std::string::npos);
    // vCPU affinity read back with xl vcpu-list: pinned for PV, Xen's default for PVH.
    EXPECT_EQ(backend["tuning"]["vcpu_pin"]["hard_affinity"]["0"], type == "pv" ? "1" : "all")
        << backend["tuning"].dump();
    if (type == "pvh") {
      EXPECT_EQ(backend["xen"]["xen_scheduler"], "credit2");
      EXPECT_EQ(backend["tuning"]["credit2"]["weight"], 512) << backend["tuning"].dump();
    }
    if (cell["axes"]["workload"] == "dom0-stress") {
      ++with_stress;
      EXPECT_EQ(result["facts"]["workload"]["placement"], "dom0") << result["facts"].dump(1);
      EXPECT_TRUE(stress_with.count(name)) << "no stress-ng in Dom0 while " << name << " ran";
    } else {
      EXPECT_FALSE(stress_with.count(name)) << "stress-ng in Dom0 during a cell without workload";
    }
  }
  EXPECT_EQ(with_stress, 1);
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

// PVH under Dom0 stress: only with VMLAT_XEN_LAB_PVH_STRESS=1 (CTest
// xen_lab_pvh_stress_tests, label heavy): under this nested TCG its domU
// crashes now and then (plugins/common/xen/README.md, "Triple faults").
TEST_F(XenLab, PvhUnderDom0StressPlanMeasuresItsCell) {
  if (!std::getenv("VMLAT_XEN_LAB_PVH_STRESS"))
    GTEST_SKIP() << "heavy: set VMLAT_XEN_LAB_PVH_STRESS=1 (ctest -L heavy)";
  const auto run = run_lab_plan_with_retry("plans/xen-lab-pvh-stress.toml", g_dir / "pvh-stress-results");
  ASSERT_EQ(run.status.exit_code, 0) << slurp(g_dir / "plan.out") << slurp(g_dir / "plan.err");
  const fs::path run_dir = fs::canonical(g_dir / "pvh-stress-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u) << run_json["cells"].dump(1);
  const json& cell = run_json["cells"][0];
  ASSERT_EQ(cell["status"], "measured") << cell.dump(1);
  const json result = cell_result(run_dir, cell);
  expect_histogram(result);
  EXPECT_EQ(result["facts"]["backend"]["type"], "pvh");
  EXPECT_EQ(result["facts"]["workload"]["placement"], "dom0") << result["facts"].dump(1);
  const std::string name = result["facts"]["backend"]["domain"].value("name", "");
  EXPECT_TRUE(run.stress_with.count(name)) << "no stress-ng in Dom0 while " << name << " ran";
  EXPECT_EQ(result["facts"]["backend"]["teardown"]["gone"], true);
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

// plans/seed-lab.toml's Xen cells: only with VMLAT_XEN_LAB_SEED=1 (CTest
// xen_lab_seed_tests, labels seed and heavy: 8 domUs, ~10 min). PV and PVH x
// Dom0 stress off/on x xen_timer_slop 100000/1000 at 50us; each domU's
// command line carries its slop; the 50us medians at both slops are printed
// (a measurement, not a pass condition: under TCG the floor may not move).
TEST_F(XenLab, SeedLabPlanMeasuresPvAndPvhAtBothTimerSlops) {
  if (!std::getenv("VMLAT_XEN_LAB_SEED")) GTEST_SKIP() << "heavy: set VMLAT_XEN_LAB_SEED=1 (ctest -L seed)";
  const auto seed = run_lab_plan_with_retry("plans/seed-lab.toml", g_dir / "seed-lab-results",
                                           {"--only", "backend=xen-pv", "--only", "backend=xen-pvh"});
  ASSERT_EQ(seed.status.exit_code, 0) << slurp(g_dir / "plan.out") << slurp(g_dir / "plan.err");
  const fs::path run_dir = fs::canonical(g_dir / "seed-lab-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 8u) << run_json["cells"].dump(1);
  std::map<std::string, long long> p50;  // "backend workload slop" -> ns
  for (const auto& cell : run_json["cells"]) {
    ASSERT_EQ(cell["status"], "measured") << cell.dump(1);
    const json result = cell_result(run_dir, cell);
    expect_histogram(result);
    const std::string slop = cell["axes"].value("xen_timer_slop", "");
    const json& backend = result["facts"]["backend"];
    EXPECT_EQ(std::to_string(backend.value("xen_timer_slop_ns", -1LL)), slop) << backend.dump(1);
    EXPECT_NE(slurp(run_dir / cell["dir"].get<std::string>() / "xl.cfg").find("xen_timer_slop=" + slop),
              std::string::npos);
    p50[cell["axes"].value("backend", "") + " " + cell["axes"].value("workload", "") + " slop " + slop] =
        result["merged"]["stats"].value("p50_ns", -1LL);
  }
  for (const auto& [what, ns] : p50) std::cout << "seed-lab 50us p50: " << what << ": " << ns / 1000 << " us\n";
  const auto report = run({(kBuild / "vmlat").string(), "report", run_dir.string(), "--format", "json"});
  ASSERT_EQ(report.code, 0) << report.err;
  EXPECT_FALSE(json::parse(report.out)["seed_tables"].empty());
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

TEST_F(XenLab, SigintMidCellLeavesNoDomainAndAnInterruptedCell) {
  std::ofstream(g_dir / "long.toml") << R"([plan]
name = "xen-sigint"
duration = "10m"
period = "1ms"
cpus = "all"
[timeouts]
boot = "5m"
[matrix]
backend = ["xen-pv"]
[backend.xen-pv]
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
)";
  auto job = Process::spawn(ProcessSpec{{(kBuild / "vmlat").string(), "run", (g_dir / "long.toml").string(),
                                         "--inventory", (g_lab / "inventory.ini").string(), "--results",
                                         (g_dir / "sigint-results").string()},
                                        {}, g_dir / "long.out", g_dir / "long.err", g_dir});
  // Mid-cell: the domU is in xl list, then ~30s more (a PV domU's agent
  // says hello ~10-20s after xl create here): the probe is running or about to.
  const auto deadline = Clock::now() + 400s;
  bool up = false;
  while (!up && job.running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(2s);
    up = dom0_snapshot().domains.size() == 2;
  }
  if (up) std::this_thread::sleep_for(30s);
  ASSERT_TRUE(up) << slurp(g_dir / "long.err");
  ::kill(job.pid(), SIGINT);
  auto status = job.wait(Clock::now() + 180s, false);
  if (status.timed_out) job.stop(5s);
  EXPECT_EQ(status.exit_code, 130) << slurp(g_dir / "long.out") << slurp(g_dir / "long.err");
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
  // Every process's command line in Dom0 (busybox's pgrep has no -a).
  auto stray = ssh({"for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null; echo; done"});
  ASSERT_EQ(stray.code, 0) << stray.err;
  EXPECT_NE(stray.out.find("sshd"), std::string::npos) << "the listing works: " << stray.out;
  EXPECT_EQ(stray.out.find("run-cell"), std::string::npos) << stray.out;
  EXPECT_EQ(stray.out.find("stress-ng"), std::string::npos) << stray.out;
  EXPECT_EQ(qemus_of(g_lab), 1) << "only the lab's QEMU";
  const json run_json = json::parse(slurp(fs::canonical(g_dir / "sigint-results" / "latest") / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u);
  EXPECT_EQ(run_json["cells"][0]["status"], "interrupted") << run_json["cells"].dump(1);
}

TEST_F(XenLab, ABackendCellWhoseDomuHangsIsAnInfraErrorWithItsConsoleKept) {
  // A shell instead of /init: the domU boots, its agent never says hello.
  std::ofstream(g_dir / "hang.toml") << R"([plan]
name = "xen-hang"
duration = "2s"
period = "1ms"
cpus = "all"
[timeouts]
boot = "25s"
[matrix]
backend = ["xen-pv"]
[backend.xen-pv]
append = "rdinit=/bin/sh"
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
)";
  auto r = run({(kBuild / "vmlat").string(), "run", (g_dir / "hang.toml").string(), "--inventory",
                (g_lab / "inventory.ini").string(), "--results", (g_dir / "hang-results").string()});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  const fs::path run_dir = fs::canonical(g_dir / "hang-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u);
  const json result = cell_result(run_dir, run_json["cells"][0]);
  EXPECT_EQ(result["status"], "infra-error") << result.dump(1);
  EXPECT_EQ(result["error_phase"], "boot") << result.dump(1);
  EXPECT_NE(result["error"].get<std::string>().find("did not come up within the boot timeout"), std::string::npos)
      << result["error"];
  // The console as the domU left it: busybox's shell on hvc0, no frame sent to it.
  const std::string console = slurp(run_dir / run_json["cells"][0]["dir"].get<std::string>() / "console.log");
  EXPECT_NE(console.find("built-in shell (ash)"), std::string::npos) << console;
  EXPECT_EQ(console.find("@@VMLAT1"), std::string::npos);
  EXPECT_EQ(result["facts"]["backend"]["teardown"]["gone"], true) << result["facts"]["backend"].dump(1);
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

// HVM under TCG takes ~10 minutes to boot (plugins/xen-hvm/README.md):
// only with VMLAT_XEN_LAB_HVM=1 (CTest xen_lab_hvm_tests, label heavy).
TEST_F(XenLab, HvmPlanTunesTheDeviceModelThreads) {
  if (!std::getenv("VMLAT_XEN_LAB_HVM")) GTEST_SKIP() << "heavy: set VMLAT_XEN_LAB_HVM=1 (ctest -L heavy)";
  auto r = run({(kBuild / "vmlat").string(), "run", (kSource / "plans/xen-lab-hvm.toml").string(), "--inventory",
                (g_lab / "inventory.ini").string(), "--results", (g_dir / "hvm-results").string()},
               3600s);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const fs::path run_dir = fs::canonical(g_dir / "hvm-results" / "latest");
  const json run_json = json::parse(slurp(run_dir / "run.json"));
  ASSERT_EQ(run_json["cells"].size(), 1u);
  for (const auto& cell : run_json["cells"]) {
    ASSERT_EQ(cell["status"], "measured") << cell.dump(1);
    const json result = cell_result(run_dir, cell);
    expect_histogram(result);
    const json& dm = result["facts"]["backend"]["tuning"]["device_model"];
    ASSERT_TRUE(dm.contains("threads")) << result["facts"]["backend"].dump(1);
    EXPECT_GT(dm["threads"].size(), 1u) << dm.dump(1);
    EXPECT_EQ(dm["ok"], true) << dm.dump(1);
    for (const auto& t : dm["threads"]) {
      if (t["state"].is_null()) continue;  // ended meanwhile
      EXPECT_EQ(t["policy"], "SCHED_FIFO") << t.dump();
      EXPECT_EQ(t["rt_priority"], 10) << t.dump();
      EXPECT_EQ(t["cpus"], "1") << t.dump();
    }
    EXPECT_EQ(result["facts"]["backend"]["teardown"]["gone"], true);
  }
  EXPECT_EQ(domains(), std::vector<std::string>{"Domain-0"});
}

TEST_F(XenLab, LabTearsDownAndLeavesNoQemu) {
  EXPECT_EQ(qemus_of(g_lab), 1);
  auto r = run({kXenLab.string(), "stop", "--dir", g_lab.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  g_lab_up = false;
  EXPECT_EQ(qemus_of(g_lab), 0);
  const json lab = json::parse(slurp(g_lab / "lab.json"));
  EXPECT_EQ(lab.value("teardown", ""), "qmp quit") << lab.dump(1);
}

}  // namespace
