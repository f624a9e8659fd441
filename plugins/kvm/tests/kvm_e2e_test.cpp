// End to end: `vmlat run` with the kvm backend and real QEMU guests (TCG on
// machines without usable KVM). Never asserts that latency is low.
//   - plans/kvm-quick.toml: histograms from nrt and rt guests, host stress off/on
//   - a guest whose init hangs is killed at the boot timeout: infra error
//     (exit 3), console.log kept, the other cell still runs
//   - SIGINT during a guest measurement: exit 130, no QEMU left, a readable
//     partial result
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <vmlat/json.hpp>
#include <vmlat/process.hpp>

#include "cli_fixture.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using vmlat::testing::kSource;
using vmlat::testing::kVmlat;
std::string read(const fs::path& p) { return vmlat::testing::read_file(p); }

// QEMU processes whose command line mentions `dir` (their console and
// sockets live under the run's directory or the test's).
int qemus_mentioning(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read(e.path() / "cmdline");
    if (cmdline.rfind("qemu-system", 0) == std::string::npos && cmdline.find("/qemu-system") == std::string::npos)
      continue;
    for (auto& c : cmdline)
      if (c == '\0') c = ' ';
    if (cmdline.find(dir) != std::string::npos) ++n;
  }
  return n;
}

class KvmE2E : public vmlat::testing::CliTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (SCHED_FIFO probe in the guest is fine, but stress/qemu setup)";
    if (find_in_path("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86 not installed";
    CliTest::SetUp();
  }
  json cell_result(const fs::path& run_dir, const json& cell) {
    return json::parse(read(run_dir / cell["dir"].get<std::string>() / "result.json"));
  }
};

TEST_F(KvmE2E, QuickPlanGivesHistogramsForNrtAndRtGuests) {
  auto r = vmlat({"run", (kSource / "plans" / "kvm-quick.toml").string(), "--results", (dir_ / "results").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("4/4 cells measured"), std::string::npos) << r.out;
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 4u);
  std::set<std::string> kernels_seen;
  for (const auto& c : run["cells"]) {
    ASSERT_EQ(c["status"], "measured") << c.dump();
    auto result = cell_result(run_dir, c);
    const std::string flavour = result["cell"]["axes"]["guest_kernel"];
    const json& backend = result["facts"]["backend"];
    EXPECT_EQ(backend["image"]["flavour"], flavour);
    EXPECT_EQ(backend["guest"]["system"]["preempt_rt"], flavour == "rt") << backend["guest"].dump(1);
    EXPECT_EQ(backend["guest"]["system"]["kernel_release"], backend["image"]["kernel_release"]);
    EXPECT_TRUE(backend["qemu"]["version"].is_string());
    EXPECT_GT(backend["boot"]["qemu_start_to_hello_s"].get<double>(), 0.0);
    EXPECT_EQ(backend["teardown"]["ended_by"], "guest poweroff") << backend["teardown"].dump();
    // A histogram per guest CPU (2 vCPUs), samples in each.
    for (const std::string cpu : {"0", "1"}) {
      ASSERT_TRUE(result["per_cpu"].contains(cpu)) << result["per_cpu"].dump();
      EXPECT_GT(result["per_cpu"][cpu]["stats"]["samples"].get<long>(), 100);
      EXPECT_FALSE(result["per_cpu"][cpu]["histogram"].is_null());
    }
    EXPECT_TRUE(fs::exists(run_dir / c["dir"].get<std::string>() / "console.log"));
    kernels_seen.insert(flavour + "/" + result["cell"]["axes"]["workload"].get<std::string>());
  }
  EXPECT_EQ(kernels_seen, (std::set<std::string>{"nrt/none", "rt/none", "nrt/host-stress", "rt/host-stress"}));
  EXPECT_EQ(qemus_mentioning(dir_.string()), 0);
}

TEST_F(KvmE2E, GuestThatNeverComesUpIsKilledAtTheBootTimeout) {
  // The nrt kernel, with an initramfs whose /init never starts the agent.
  // build-guest is asked as the backend asks for the "good" cell (with the
  // probe): one image, and the backend's stamps then hold.
  auto guest_json = dir_ / "guest.json";
  {
    auto p = Process::spawn(ProcessSpec{{(kSource / "plugins/common/guest/images/build-guest").string(), "--flavour", "nrt",
                                         "--print-json", "--agent",
                                         (fs::path(VMLAT_BINARY_DIR) / "libexec/vmlat-guest-agent").string(), "--probe",
                                         (fs::path(VMLAT_BINARY_DIR) / "libexec/vmlat-probe").string()},
                                        {}, guest_json, dir_ / "build-guest.err", dir_});
    ASSERT_TRUE(p.wait(Clock::now() + 900s, false).success()) << read(dir_ / "build-guest.err");
  }
  const std::string kernel = json::parse(read(guest_json))["vmlinuz"];
  auto root = dir_ / "hang-root";
  fs::create_directories(root / "bin");
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  std::ofstream(root / "init") << "#!/bin/busybox sh\n/bin/busybox echo vmlat-test: this init hangs\n"
                                  "exec /bin/busybox sleep 100000\n";
  fs::permissions(root / "init", fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  auto initrd = dir_ / "hang.cpio";
  {
    auto p = Process::spawn(ProcessSpec{
        {"sh", "-c", "cd '" + root.string() + "' && find . | cpio -o -H newc --quiet > '" + initrd.string() + "'"},
        {}, dir_ / "cpio.out", dir_ / "cpio.out", dir_});
    ASSERT_TRUE(p.wait(Clock::now() + 60s, false).success()) << read(dir_ / "cpio.out");
  }
  std::ofstream(dir_ / "plan.toml") << R"([plan]
name = "kvm-hang"
duration = "2s"
period = "1ms"
cpus = [0]

# The "good" guest shares this timeout: a TCG boot takes 3-10 s on quiet
# cores, 25 s and more on this shared 2-core machine at load 9-13 (its
# hello came at 24.9997 s of a 25 s timeout there).
[timeouts]
boot = "90s"

[matrix]
backend = ["hang", "good"]

[backend.hang]
plugin = "kvm"
kernel = ")" << kernel << R"("
initrd = ")" << initrd.string() << R"("
vcpus = 1
memory_mb = 256

[backend.good]
plugin = "kvm"
image = "nrt"
vcpus = 1
memory_mb = 256

[probe.cyclictest]
plugin = "cyclic"
)";
  const auto t0 = Clock::now();
  auto r = vmlat({"run", (dir_ / "plan.toml").string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 2u);
  int checked = 0;
  for (const auto& c : run["cells"]) {
    auto result = cell_result(run_dir, c);
    const auto cell_dir = run_dir / c["dir"].get<std::string>();
    if (result["cell"]["axes"]["backend"] == "hang") {
      EXPECT_EQ(result["status"], "infra-error");
      EXPECT_EQ(result["error_phase"], "boot");
      // Killed at the boot timeout, not before and not long after.
      const double boot_s = result["timings"]["phases"].value("boot_s", 0.0);
      EXPECT_GE(boot_s, 89.9);
      EXPECT_LT(boot_s, 120.0);
      const std::string error = result["error"];
      EXPECT_NE(error.find("did not come up within the boot timeout"), std::string::npos) << error;
      EXPECT_NE(error.find("this init hangs"), std::string::npos) << "the console's last lines: " << error;
      EXPECT_TRUE(fs::exists(cell_dir / "console.log"));
      EXPECT_NE(read(cell_dir / "console.log").find("vmlat-test: this init hangs"), std::string::npos);
      EXPECT_NE(result["artifacts"].dump().find("console.log"), std::string::npos) << result["artifacts"].dump();
      EXPECT_EQ(result["facts"]["backend"]["image"]["source"], "user");
      const std::string ended = result["facts"]["backend"]["teardown"].value("ended_by", "");
      EXPECT_TRUE(ended == "qmp quit" || ended == "SIGTERM" || ended == "SIGKILL") << ended;
      ++checked;
    } else {
      EXPECT_EQ(result["status"], "measured") << result["error"];
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
  EXPECT_LT(Clock::now() - t0, 420s);
  EXPECT_EQ(qemus_mentioning(dir_.string()), 0);
}

TEST_F(KvmE2E, SigintDuringAGuestRunLeavesNoQemuAndAPartialResult) {
  std::ofstream(dir_ / "plan.toml") << R"([plan]
name = "kvm-sigint"
duration = "60s"
period = "1ms"
cpus = [0]

[backend.kvm]
image = "nrt"
vcpus = 1
memory_mb = 256

[probe.cyclictest]
plugin = "cyclic"
)";
  auto out = dir_ / "stdout", err = dir_ / "stderr";
  auto p = Process::spawn(ProcessSpec{
      {kVmlat.string(), "run", (dir_ / "plan.toml").string(), "--results", (dir_ / "results").string()},
      {}, out, err, dir_});
  bool measuring = false;
  for (int i = 0; i < 3000 && !measuring; ++i) {
    std::this_thread::sleep_for(100ms);
    if (!fs::exists(dir_ / "results")) continue;
    for (const auto& run : fs::directory_iterator(dir_ / "results")) {
      if (!run.is_directory() || run.is_symlink() || !fs::exists(run.path() / "cells")) continue;
      for (const auto& cell : fs::directory_iterator(run.path() / "cells"))
        if (read(cell.path() / "cell.log").find("running cyclictest on guest") != std::string::npos) measuring = true;
    }
  }
  ASSERT_TRUE(measuring) << read(err);
  EXPECT_EQ(qemus_mentioning(dir_.string()), 1) << "the guest is running";
  std::this_thread::sleep_for(4s);
  ::kill(p.pid(), SIGINT);
  auto status = p.wait(Clock::now() + 120s, false);
  EXPECT_EQ(status.exit_code, 130) << status.describe() << read(err);
  EXPECT_EQ(qemus_mentioning(dir_.string()), 0) << "no QEMU may survive the interrupt";
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(run["status"], "interrupted");
  ASSERT_EQ(run["cells"].size(), 1u);
  auto result = cell_result(run_dir, run["cells"][0]);
  EXPECT_EQ(result["status"], "interrupted");
  // cyclictest was stopped in the guest and printed what it had: a few
  // seconds of the 60s.
  ASSERT_FALSE(result["merged"].is_null()) << result.dump(1);
  EXPECT_GT(result["merged"]["stats"]["samples"].get<long>(), 100);
  EXPECT_LT(result["merged"]["stats"]["samples"].get<long>(), 50000);
  EXPECT_TRUE(fs::exists(run_dir / run["cells"][0]["dir"].get<std::string>() / "console.log"));
}


TEST_F(KvmE2E, StressInsideTheGuestWithWhereGuest) {
  std::ofstream(dir_ / "plan.toml") << R"([plan]
name = "kvm-guest-stress"
duration = "2s"
period = "1ms"
cpus = [0]

[timeouts]
boot = "120s"

[backend.kvm]
image = "rt"
vcpus = 2
memory_mb = 256

[workload.guest-stress]
plugin = "stress"
where = "guest"
preset = "kernel-stress"

[probe.cyclictest]
plugin = "cyclic"
)";
  auto r = vmlat({"run", (dir_ / "plan.toml").string(), "--results", (dir_ / "results").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 1u);
  auto result = cell_result(run_dir, run["cells"][0]);
  EXPECT_EQ(result["status"], "measured");
  EXPECT_EQ(result["plugins"]["workload"]["where"], "guest");
  const std::string log = read(run_dir / run["cells"][0]["dir"].get<std::string>() / "cell.log");
  EXPECT_NE(log.find("starting stress-ng on guest"), std::string::npos) << log;
  EXPECT_GT(result["merged"]["stats"]["samples"].get<long>(), 100);
  EXPECT_EQ(qemus_mentioning(dir_.string()), 0);
}

}  // namespace
