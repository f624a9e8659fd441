// The kvm plugin loaded from the build tree, configured from a plan and driven
// as the runner drives it: a real QEMU guest (TCG here) boots, commands run in
// it through the guest executor, the thread tuning is read back from /proc
// independently of the plugin, and teardown leaves no QEMU. Needs root (for
// SCHED_FIFO) and qemu-system-x86; kept short: FIFO 10 on host CPU 1 only.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <vmlat/context.hpp>
#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/local.hpp>
#include <vmlat/log.hpp>
#include <vmlat/plugin.hpp>

#include "loader.hpp"
#include "plan.hpp"

namespace {

using namespace std::chrono_literals;
using namespace vmlat;
namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Logs final : public Logger {
 public:
  void info(std::string_view m) override { lines.push_back("info: " + std::string(m)); }
  void warn(std::string_view m) override { lines.push_back("warn: " + std::string(m)); }
  void error(std::string_view m) override { lines.push_back("error: " + std::string(m)); }
  std::vector<std::string> lines;
};

class Ctx final : public CellContext {
 public:
  Ctx(CellSpec spec, const fs::path& dir) : spec_(std::move(spec)), cell_(dir / "cell"), work_(dir / "work") {
    fs::create_directories(cell_);
    fs::create_directories(work_);
    host_ = make_local_executor(work_ / "host", "host");
  }
  const CellSpec& cell() const override { return spec_; }
  const fs::path& cell_dir() const override { return cell_; }
  const fs::path& work_dir() const override { return work_; }
  void save_artifact(std::string_view name, std::string_view content) override {
    artifacts[std::string(name)] = std::string(content);
  }
  Logger& log() override { return logs; }
  Executor& host() override { return *host_; }
  std::map<std::string, std::string> artifacts;
  Logs logs;

 private:
  CellSpec spec_;
  fs::path cell_, work_;
  std::unique_ptr<Executor> host_;
};

class KvmBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vmlat-kvm-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PluginRegistry& registry() {
    static PluginRegistry r({fs::path(VMLAT_BINARY_DIR) / "plugins"});
    return r;
  }
  // Loads a plan holding `backend_table` as [backend.kvm]; returns the diagnostics.
  std::string validate(const std::string& backend_table, Plan* out = nullptr) {
    auto path = dir_ / "plan.toml";
    std::ofstream(path) << "[plan]\nname = \"kvm-test\"\nduration = \"1s\"\n\n[backend.kvm]\n" << backend_table
                        << "\n\n[probe.cyclic]\n";
    Diagnostics diags;
    Plan plan = load_plan(path, diags, &registry());
    if (out) *out = plan;
    return diags.str();
  }
  std::unique_ptr<Plugin> configured(const Plan& plan) {
    auto plugin = registry().create("kvm");
    Diagnostics diags;
    auto settings = instance_settings(plan.backends.at("kvm"), diags);
    plugin->configure(settings);
    settings.finish();
    EXPECT_TRUE(diags.empty()) << diags.str();
    return plugin;
  }
  // A 1 s cell at 1 ms: what these tests hand the backend.
  static CellSpec short_cell(std::string id) {
    CellSpec spec;
    spec.id = std::move(id);
    spec.period = 1ms;
    spec.duration = 1s;
    return spec;
  }

  // prepare, then boot within `boot_timeout`, then teardown (always), as the
  // runner does; returns the boot's InfraError message (empty if it booted).
  template <typename Context>
  static std::string boot_expecting_failure(Backend& backend, Context& ctx, std::chrono::seconds boot_timeout) {
    {
      PhaseScope prepare("prepare", Clock::now() + 15min);
      backend.prepare(ctx);
    }
    std::string error;
    try {
      PhaseScope boot("boot", Clock::now() + boot_timeout);
      backend.boot(ctx);
    } catch (const InfraError& e) {
      error = e.what();
    }
    PhaseScope teardown("teardown", Clock::now() + 60s, false);
    backend.teardown(ctx);
    return error;
  }

  fs::path dir_;
};

TEST_F(KvmBoot, PlanGivingEveryHostCpuToRtVcpusIsRefused) {
  if (sysconf(_SC_NPROCESSORS_ONLN) != 2) GTEST_SKIP() << "written for a 2-CPU host";
  std::string diags = validate("vcpus = 2\nvcpu_priority = 10\nvcpu_pin = [0, 1]");
  EXPECT_NE(diags.find("covers every host CPU"), std::string::npos) << diags;
  EXPECT_NE(diags.find("plan.toml:"), std::string::npos) << "located: " << diags;
  diags = validate("vcpus = 2\nvcpu_priority = 10");
  EXPECT_NE(diags.find("can occupy all 2 host CPUs"), std::string::npos) << diags;
  EXPECT_EQ(validate("vcpus = 2\nvcpu_priority = 10\nvcpu_pin = [0, 1]\nallow_rt_starvation = true"), "");
  EXPECT_EQ(validate("vcpus = 1\nvcpu_priority = 10\nvcpu_pin = [1]"), "");
  diags = validate("vcpus = 2\nvcpu_priority = 10\nvcpu_pin = [1]");
  EXPECT_NE(diags.find("share host CPU 1"), std::string::npos) << diags;
  diags = validate("vcpus = 1\nvcpu_pin = [0, 1]");
  EXPECT_NE(diags.find("at most one CPU per vCPU"), std::string::npos) << diags;
  diags = validate("kernel = \"/boot/x\"");
  EXPECT_NE(diags.find("kernel and initrd go together"), std::string::npos) << diags;
}

TEST_F(KvmBoot, RequireKvmRefusesTcg) {
  Plan plan;
  ASSERT_EQ(validate("image = \"nrt\"\nrequire_kvm = true", &plan), "");
  EXPECT_NE(validate("require_kvm = true\naccel = \"tcg\"").find("contradicts"), std::string::npos);
  auto plugin = configured(plan);
  auto* backend = dynamic_cast<Backend*>(plugin.get());
  ASSERT_NE(backend, nullptr);
  CellSpec spec = short_cell("kvm-require");
  Ctx ctx(spec, dir_);
  PhaseScope prepare("prepare", Clock::now() + 15min);
  try {
    backend->prepare(ctx);
    // Only on a machine where KVM really works.
    EXPECT_EQ(backend->facts()["accelerator"], "kvm");
  } catch (const InfraError& e) {
    EXPECT_NE(std::string(e.what()).find("KVM is required by the plan but not usable here"), std::string::npos)
        << e.what();
  }
  PhaseScope teardown("teardown", Clock::now() + 60s, false);
  backend->teardown(ctx);
}

TEST_F(KvmBoot, QemuDyingAtStartIsAClearInfraError) {
  Plan plan;
  ASSERT_EQ(validate("image = \"nrt\"\nvcpus = 1\nextra_args = [\"-no-such-option\"]", &plan), "");
  auto plugin = configured(plan);
  auto* backend = dynamic_cast<Backend*>(plugin.get());
  ASSERT_NE(backend, nullptr);
  CellSpec spec = short_cell("kvm-qemu-dies");
  Ctx ctx(spec, dir_);
  std::string error = boot_expecting_failure(*backend, ctx, 120s);
  EXPECT_NE(error.find("QEMU ended during boot"), std::string::npos) << error;
  EXPECT_NE(error.find("no-such-option"), std::string::npos) << "QEMU's own message: " << error;
  ASSERT_TRUE(ctx.artifacts.count("qemu.log"));
  EXPECT_NE(ctx.artifacts["qemu.log"].find("no-such-option"), std::string::npos);
}

TEST_F(KvmBoot, BootsRunsTunesAndTearsDown) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for SCHED_FIFO";
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 host CPUs";
  Plan plan;
  ASSERT_EQ(validate("image = \"nrt\"\nvcpus = 1\nmemory_mb = 256\nvcpu_pin = [1]\nvcpu_priority = 10\n"
                     "emulator_pin = [0]\nemulator_priority = 2",
                     &plan),
            "");
  auto plugin = configured(plan);
  auto* backend = dynamic_cast<Backend*>(plugin.get());
  ASSERT_NE(backend, nullptr);
  CellSpec spec;
  spec.id = "kvm-boot-test";
  spec.plan_name = "kvm-test";
  spec.period = 1ms;
  spec.duration = 1s;
  Ctx ctx(spec, dir_);

  bool torn_down = false;
  pid_t qemu_pid = 0;
  try {
    {
      PhaseScope prepare("prepare", Clock::now() + 15min);
      backend->prepare(ctx);
    }
    {
      PhaseScope boot("boot", Clock::now() + 120s);
      backend->boot(ctx);
    }
    json facts = backend->facts();
    ASSERT_TRUE(facts["boot"]["qemu_start_to_hello_s"].is_number()) << facts.dump(1);
    EXPECT_GT(facts["boot"]["qemu_start_to_hello_s"].get<double>(), 0.0);
    EXPECT_EQ(facts["guest"]["system"]["kernel_release"], facts["image"]["kernel_release"]);
    EXPECT_EQ(facts["guest"]["system"]["cpu_count"], 1);
    EXPECT_TRUE(facts["qemu"]["version"].is_string());
    EXPECT_TRUE(facts["accelerator"] == "kvm" || facts["accelerator"] == "tcg");

    // The tuning, read back here from /proc/<tid>/sched and the affinity
    // syscall, independently of how the plugin read it.
    const json& tuning = facts["tuning"];
    ASSERT_TRUE(tuning["ok"].get<bool>()) << tuning.dump(1);
    int vcpus = 0, emulators = 0;
    for (const auto& t : tuning["threads"]) {
      if (t["state"].is_null() && !t.contains("policy")) continue;  // ended meanwhile
      const pid_t tid = t["tid"];
      const std::string sched = read("/proc/" + std::to_string(tid) + "/sched");
      if (sched.empty()) continue;  // a short-lived worker thread that ended
      cpu_set_t set;
      CPU_ZERO(&set);
      ASSERT_EQ(::sched_getaffinity(tid, sizeof set, &set), 0);
      if (t["role"] == "vcpu") {
        ++vcpus;
        EXPECT_NE(t["comm"].get<std::string>().find("CPU "), std::string::npos) << t.dump();
        EXPECT_NE(sched.find("policy                                       :                    1"),
                  std::string::npos) << "SCHED_FIFO expected:\n" << sched;
        // prio = 99 - rt_priority for RT tasks.
        EXPECT_NE(sched.find("prio                                         :                   89"),
                  std::string::npos) << sched;
        EXPECT_EQ(CPU_COUNT(&set), 1);
        EXPECT_TRUE(CPU_ISSET(1, &set));
        EXPECT_EQ(t["policy"], "SCHED_FIFO");
        EXPECT_EQ(t["rt_priority"], 10);
        EXPECT_EQ(t["cpus"], "1");
      } else {
        ++emulators;
        EXPECT_EQ(CPU_COUNT(&set), 1) << t.dump();
        EXPECT_TRUE(CPU_ISSET(0, &set));
        EXPECT_EQ(t["rt_priority"], 2);
      }
      if (qemu_pid == 0) {
        std::string status = read("/proc/" + std::to_string(tid) + "/status");
        auto at = status.find("Tgid:");
        if (at != std::string::npos) qemu_pid = std::stoi(status.substr(at + 5));
      }
    }
    EXPECT_EQ(vcpus, 1);
    EXPECT_GE(emulators, 1);

    // Commands in the guest.
    PhaseScope measure("measure", Clock::now() + 120s);
    Executor& guest = backend->probe_target();
    EXPECT_EQ(guest.name(), "guest");
    auto uname = guest.run(Command{{"uname", "-r"}, 30s});
    EXPECT_EQ(uname.exit_code, 0) << uname.describe();
    EXPECT_EQ(uname.out, facts["image"]["kernel_release"].get<std::string>() + "\n");
    EXPECT_EQ(guest.find_program("cyclictest"), std::optional<std::string>("/usr/bin/cyclictest"));
    EXPECT_FALSE(guest.find_program("no-such-program"));
    auto fail = guest.run(Command{{"sh", "-c", "echo oops >&2; exit 4"}, 30s});
    EXPECT_EQ(fail.exit_code, 4);
    EXPECT_EQ(fail.err, "oops\n");
    auto slow = guest.run(Command{{"sleep", "30"}, 1s});
    EXPECT_TRUE(slow.timed_out);
    auto job = backend->placement("guest").start(Command{{"sleep", "60"}});
    EXPECT_TRUE(job->running());
    auto stopped = job->stop(1s);
    EXPECT_EQ(stopped.signal, SIGTERM) << stopped.describe();
    EXPECT_EQ(backend->placement("host").name(), "host");
    EXPECT_THROW(backend->placement("dom0"), InfraError);
  } catch (...) {
    PhaseScope teardown("teardown", Clock::now() + 60s, false);
    backend->teardown(ctx);
    torn_down = true;
    throw;
  }
  if (!torn_down) {
    PhaseScope teardown("teardown", Clock::now() + 60s, false);
    backend->teardown(ctx);
  }
  ASSERT_GT(qemu_pid, 0);
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(qemu_pid))) << "QEMU " << qemu_pid << " survived the teardown";
  EXPECT_EQ(backend->facts()["teardown"]["ended_by"], "guest poweroff") << backend->facts()["teardown"].dump();
  ASSERT_TRUE(ctx.artifacts.count("console.log"));
  EXPECT_NE(ctx.artifacts["console.log"].find("vmlat-init"), std::string::npos);
}

}  // namespace

namespace {

TEST_F(KvmBoot, DiskSettingsAreValidated) {
  EXPECT_NE(validate("disk = \"/x.img\"\nimage = \"rt\"", nullptr).find("disk (your own disk image) excludes image"),
            std::string::npos);
  EXPECT_NE(validate("disk_format = \"qcow2\"", nullptr).find("disk_format applies only with disk"), std::string::npos);
  EXPECT_NE(validate("disk = \"/x.img\"\ndisk_format = \"vmdk\"", nullptr).find("must be one of: raw, qcow2"),
            std::string::npos);
}

// The user's disk image path, as far as this machine allows without a
// bootable OS image: QEMU boots the disk through SeaBIOS (no -kernel), finds
// nothing bootable, no agent says hello, and the boot timeout makes it a
// clear infra error. The image itself is never written (snapshot=on).
TEST_F(KvmBoot, UserDiskImageBootsFromTheDiskAndIsLeftUntouched) {
  auto disk = dir_ / "blank.img";
  { std::ofstream(disk, std::ios::binary) << std::string(1 << 20, '\0'); }
  Plan plan;
  ASSERT_EQ(validate("disk = \"" + disk.string() + "\"\nvcpus = 1\nmemory_mb = 128", &plan), "");
  auto plugin = configured(plan);
  auto* backend = dynamic_cast<Backend*>(plugin.get());
  ASSERT_NE(backend, nullptr);
  CellSpec spec = short_cell("kvm-user-disk");
  Ctx ctx(spec, dir_);
  std::string error = boot_expecting_failure(*backend, ctx, 8s);
  EXPECT_FALSE(error.empty()) << "a blank disk cannot bring up the agent";
  auto facts = backend->facts();
  EXPECT_EQ(facts["image"]["source"], "user-disk");
  const auto& argv = facts["vm"]["argv"];
  bool drive = false, kernel = false;
  for (const auto& a : argv) {
    if (a == "file=" + disk.string() + ",format=raw,if=virtio,snapshot=on") drive = true;
    if (a == "-kernel") kernel = true;
  }
  EXPECT_TRUE(drive) << argv.dump();
  EXPECT_FALSE(kernel) << argv.dump();
  ASSERT_TRUE(ctx.artifacts.count("console.log"));
  EXPECT_EQ(read(disk), std::string(1 << 20, '\0')) << "snapshot=on: the image is not written";
}

}  // namespace
