// The stress workload loaded from the build tree, configured from a plan and
// run for real with stress-ng on this machine (a few seconds in all).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/plugin.hpp>

#include "plugin_harness.hpp"

namespace {

using namespace std::chrono_literals;
using namespace vmlat;
using vmlat::testing::argv_has;
using vmlat::testing::configured;
using vmlat::testing::contains;
using vmlat::testing::FakeCellContext;
using vmlat::testing::load_plan_text;
using vmlat::testing::TempDir;

std::string plan_with(const std::string& workload_table) {
  return "[backend.host]\n\n[probe.cyclic]\n\n[workload.stress]\n" + workload_table;
}

CellSpec cell() {
  CellSpec spec;
  spec.id = "stress-test";
  spec.period = 1ms;
  spec.duration = 1s;
  return spec;
}

class StressWorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!vmlat::testing::registry().find("stress"))
      FAIL() << "plugin stress not built into " << VMLAT_BINARY_DIR << "/plugins";
    // Bound every wait, as the runner's phases do.
    phase_ = std::make_unique<PhaseScope>("test", Clock::now() + 60s);
  }

  Workload& workload(const std::string& table) {
    loaded_ = load_plan_text(dir_, plan_with(table));
    EXPECT_TRUE(loaded_->diags.empty()) << loaded_->diags.str();
    plugin_ = configured<Workload>(loaded_->plan, "workload", "stress");
    ctx_ = std::make_unique<FakeCellContext>(cell(), dir_.path());
    return dynamic_cast<Workload&>(*plugin_);
  }

  std::string temp_path(const json& argv) {
    for (std::size_t i = 0; i + 1 < argv.size(); ++i)
      if (argv[i] == "--temp-path") return argv[i + 1].get<std::string>();
    return {};
  }

  std::unique_ptr<PhaseScope> phase_;
  TempDir dir_;
  std::unique_ptr<vmlat::testing::LoadedPlan> loaded_;
  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<FakeCellContext> ctx_;
};

TEST_F(StressWorkloadTest, ValidatesSettings) {
  auto ok = load_plan_text(dir_, plan_with("preset = \"none\"\nstressors = { cpu = 2, timer = 0 }\n"
                                           "workers = 3\nextra_args = [\"--verbose\"]\nsettle = \"200ms\"\n"
                                           "stop_grace = \"2s\"\n"));
  EXPECT_TRUE(ok->diags.empty()) << ok->diags.str();

  auto bad = load_plan_text(dir_, plan_with(R"(preset = "heavy"
stressors = { cpuu = 2, timer = -1, pipe = "many", sigq = true }
workers = -1
settle = "1"
)"));
  const std::string all = bad->diags.str();
  EXPECT_TRUE(contains(all, "plan.toml:6:")) << all;  // preset
  EXPECT_TRUE(contains(all, "unknown stressor \"cpuu\" (did you mean \"cpu\"?)")) << all;
  EXPECT_TRUE(contains(all, "stressor \"timer\" needs a worker count from 0 to 4096")) << all;
  EXPECT_TRUE(contains(all, "not \"many\"")) << all;
  EXPECT_TRUE(contains(all, "sigq")) << all;  // a boolean is not a count
  EXPECT_TRUE(contains(all, "plan.toml:8:")) << all;  // workers
  EXPECT_TRUE(contains(all, "plan.toml:9:")) << all;  // settle without a unit

  auto empty = load_plan_text(dir_, plan_with("preset = \"none\"\n"));
  EXPECT_TRUE(contains(empty->diags.str(), "needs at least one entry in stressors")) << empty->diags.str();
}

TEST_F(StressWorkloadTest, KernelStressPresetRunsUntilStopped) {
  Workload& w = workload("workers = 1\nsettle = \"500ms\"\n");
  w.start(ctx_->host(), *ctx_);
  json facts = plugin_->facts();
  const json& argv = facts["argv"];
  for (const char* stressor : {"--get", "--timer", "--pipe", "--sigq", "--switch", "--hdd", "--iomix"})
    EXPECT_TRUE(argv_has(argv, {stressor, "1"})) << stressor << " in " << argv.dump();
  EXPECT_TRUE(argv_has(argv, {"--timeout", "0"})) << argv.dump();
  EXPECT_TRUE(argv_has(argv, {"--hdd-bytes", "8m"})) << argv.dump();
  EXPECT_EQ(facts["placement"], "host");
  EXPECT_TRUE(contains(facts["stress_ng_version"].get<std::string>(), "stress-ng")) << facts.dump();
  const std::string temp = temp_path(argv);
  // In the target's temp dir (the run's work directory on this machine), never /tmp itself.
  ASSERT_EQ(temp.rfind(ctx_->host().temp_dir() + "/vmlat-stress.", 0), 0u) << argv.dump();
  EXPECT_TRUE(std::filesystem::is_directory(temp));

  std::this_thread::sleep_for(1s);  // still running well after settle
  w.stop(*ctx_);
  EXPECT_FALSE(std::filesystem::exists(temp)) << temp;
  ASSERT_TRUE(ctx_->artifacts.count("stress-ng.err"));
  ASSERT_TRUE(ctx_->artifacts.count("stress-ng.out"));
  const std::string& err = ctx_->artifacts["stress-ng.err"];
  EXPECT_TRUE(contains(err, "dispatching hogs")) << err;
  EXPECT_TRUE(contains(err, "get")) << err;
  // Stopped through its main process: a clean shutdown, no bogus failures.
  EXPECT_EQ(plugin_->facts()["stop_status"].get<std::string>().rfind("exit code 0", 0), 0u) << plugin_->facts().dump();
  EXPECT_FALSE(contains(err, "fail:")) << err;
  EXPECT_TRUE(contains(err, "successful run completed")) << err;
  w.stop(*ctx_);  // a second stop is harmless
}

TEST_F(StressWorkloadTest, OnlyTheListedStressors) {
  Workload& w = workload("preset = \"none\"\nstressors = { cpu = 1, timer = 1 }\nsettle = \"300ms\"\n");
  w.start(ctx_->host(), *ctx_);
  const json argv = plugin_->facts()["argv"];
  w.stop(*ctx_);
  EXPECT_TRUE(argv_has(argv, {"--cpu", "1"})) << argv.dump();
  EXPECT_TRUE(argv_has(argv, {"--timer", "1"})) << argv.dump();
  EXPECT_FALSE(argv_has(argv, {"--get"})) << argv.dump();
  EXPECT_FALSE(argv_has(argv, {"--hdd-bytes"})) << argv.dump();
}

TEST_F(StressWorkloadTest, ExitDuringSettleIsAnInfraError) {
  Workload& w = workload("preset = \"none\"\nstressors = { cpu = 1 }\nextra_args = [\"--no-such-option\"]\n"
                         "settle = \"500ms\"\n");
  try {
    w.start(ctx_->host(), *ctx_);
    ADD_FAILURE() << "start() did not throw";
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "stress-ng exited within 500ms")) << e.what();
    EXPECT_TRUE(contains(e.what(), "no-such-option")) << e.what();  // stress-ng's own complaint
  }
  EXPECT_TRUE(ctx_->artifacts.count("stress-ng.err"));
  w.stop(*ctx_);  // the runner stops after a failed start: nothing left to do
}

TEST_F(StressWorkloadTest, ExitBeforeStopIsAnInfraError) {
  // A later --timeout overrides the plugin's --timeout 0: stress-ng ends by itself.
  Workload& w = workload("preset = \"none\"\nstressors = { cpu = 1 }\nextra_args = [\"--timeout\", \"1\"]\n"
                         "settle = \"200ms\"\n");
  w.start(ctx_->host(), *ctx_);
  std::this_thread::sleep_for(2500ms);
  try {
    w.stop(*ctx_);
    ADD_FAILURE() << "stop() did not throw";
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "had exited before it was stopped")) << e.what();
  }
  EXPECT_TRUE(contains(ctx_->artifacts["stress-ng.err"], "successful run completed")) << ctx_->artifacts["stress-ng.err"];
}

class WithoutStressNg final : public Executor {
 public:
  explicit WithoutStressNg(Executor& inner) : inner_(inner) {}
  std::string name() const override { return "guest"; }
  CommandResult run(const Command& c) override { return inner_.run(c); }
  std::unique_ptr<Job> start(const Command& c) override { return inner_.start(c); }
  std::string temp_dir() override { return inner_.temp_dir(); }
  std::optional<std::string> find_program(const std::string& name) override {
    return name == "stress-ng" ? std::nullopt : inner_.find_program(name);
  }

 private:
  Executor& inner_;
};

TEST_F(StressWorkloadTest, MissingStressNg) {
  Workload& w = workload("");
  WithoutStressNg guest(ctx_->host());
  try {
    w.start(guest, *ctx_);
    ADD_FAILURE() << "start() did not throw";
  } catch (const InfraError& e) {
    EXPECT_STREQ(e.what(), "stress-ng not found on guest: install the Debian package stress-ng");
  }
}

}  // namespace
