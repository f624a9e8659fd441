// End-to-end: the vmlat CLI runs real plans with the real plugins (cyclictest,
// stress-ng, the native probe) and we check files, exit codes and processes.
// Latency values are never asserted to be low: these machines are noisy VMs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "vmlat/json.hpp"
#include "cli_fixture.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using vmlat::testing::CliResult;
using vmlat::testing::kVmlat;

std::string read(const fs::path& p) { return vmlat::testing::read_file(p); }

class E2E : public vmlat::testing::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    become_subreaper();
  }

  // A PATH with everything of /usr/bin but cyclictest.
  fs::path path_without_cyclictest() {
    auto bin = dir_ / "bin";
    fs::create_directories(bin);
    for (const auto& e : fs::directory_iterator("/usr/bin"))
      if (e.path().filename() != "cyclictest") fs::create_symlink(e.path(), bin / e.path().filename());
    return bin;
  }
};

const std::string& kOneNativeCell = vmlat::testing::kOneNativeCellPlan;
const std::string& kBothEngines = vmlat::testing::kBothEnginesPlan;

std::string quick_plan(const std::string& gates, const std::string& duration = "2s") {
  return R"([plan]
name = "e2e"
duration = ")" + duration + R"("
period = "1ms"
cpus = [0]

[matrix]
workload = ["none", "stress"]
probe = ["cyclictest", "native"]

[backend.host]

[workload.stress]
preset = "kernel-stress"

[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"

[probe.native]
plugin = "cyclic"
engine = "native"
)" + gates;
}

using vmlat::testing::count_leftovers;

}  // namespace

TEST_F(E2E, QuickPlanWritesResultsAndPasses) {
  auto plan = write_plan("plan.toml", quick_plan(R"(
[[gate]]
name = "loose"
stat = "max"
bound = "1s"
)"));
  auto r = vmlat({"run", plan.string(), "--junit", (dir_ / "junit.xml").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("4/4 cells measured"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");  // quiet when not on a terminal
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(run["schema"], "vmlat-run/1");
  EXPECT_EQ(run["status"], "complete");
  EXPECT_EQ(run["exit_code"], 0);
  EXPECT_EQ(run["plan"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_TRUE(run["hosts"]["local"]["kernel_release"].is_string());
  ASSERT_EQ(run["cells"].size(), 4u);
  for (const auto& c : run["cells"]) {
    EXPECT_EQ(c["status"], "measured") << c.dump();
    auto result = json::parse(read(run_dir / c["dir"].get<std::string>() / "result.json"));
    EXPECT_EQ(result["schema"], "vmlat-cell-result/1");
    const auto& stats = result["merged"]["stats"];
    // ~2000 wake-ups at 1ms for 2s on one CPU; a noisy VM misses some.
    EXPECT_GT(stats["samples"].get<long>(), 500) << stats.dump();
    EXPECT_LE(stats["samples"].get<long>(), 2100) << stats.dump();
    EXPECT_LE(stats["min_ns"].get<long>(), stats["p50_ns"].get<long>());
    EXPECT_LE(stats["p50_ns"].get<long>(), stats["p99_ns"].get<long>());
    EXPECT_LE(stats["p99_ns"].get<long>(), stats["max_ns"].get<long>());
    ASSERT_TRUE(result["per_cpu"].contains("0")) << result["per_cpu"].dump();
    EXPECT_EQ(result["per_cpu"]["0"]["stats"]["max_ns"], stats["max_ns"]);
    EXPECT_EQ(result["gates"][0]["verdict"], "pass");
    EXPECT_EQ(result["gates"][0]["value_ns"], stats["max_ns"]);
    EXPECT_FALSE(result["artifacts"].empty()) << "the probe's raw output is kept";
    for (const auto& a : result["artifacts"]) EXPECT_TRUE(fs::exists(run_dir / c["dir"].get<std::string>() / a.get<std::string>()));
    EXPECT_TRUE(fs::exists(run_dir / c["dir"].get<std::string>() / "cell.log"));
  }
  EXPECT_TRUE(fs::exists(run_dir / "run.log"));
  auto junit = read(dir_ / "junit.xml");
  EXPECT_NE(junit.find("tests=\"4\" failures=\"0\" errors=\"0\""), std::string::npos) << junit;
  EXPECT_EQ(count_leftovers(), 0);
}

TEST_F(E2E, GateBelowTheMeasuredMaxExits1WithTheExcess) {
  auto plan = write_plan("plan.toml", kOneNativeCell + R"([[gate]]
name = "impossible"
stat = "max"
bound = "1ns"
)");
  auto r = vmlat({"run", plan.string(), "--junit", (dir_ / "junit.xml").string()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("FAIL: max"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exceeds bound 1ns by"), std::string::npos) << r.out;
  auto run_dir = only_run_dir();
  auto result = json::parse(read(run_dir / "cells" / "host-none-native-1ms" / "result.json"));
  auto max = result["merged"]["stats"]["max_ns"].get<long>();
  EXPECT_EQ(result["gates"][0]["verdict"], "fail");
  EXPECT_EQ(result["gates"][0]["excess_ns"].get<long>(), max - 1);
  auto junit = read(dir_ / "junit.xml");
  EXPECT_NE(junit.find("<failure type=\"gate\""), std::string::npos) << junit;
}

TEST_F(E2E, UnknownKeyExits2FromValidateAndRunWithLocation) {
  auto plan = write_plan("bad.toml", "[plan]\nduration = \"1s\"\nperod = \"1ms\"\n[backend.host]\n[probe.native]\nplugin = \"cyclic\"\n");
  for (const std::string cmd : {"validate", "run"}) {
    auto r = vmlat({cmd, plan.string()});
    EXPECT_EQ(r.code, 2) << cmd << r.err;
    EXPECT_NE(r.err.find(plan.string() + ":3:1: unknown key 'perod' in [plan]; did you mean 'period'?"), std::string::npos)
        << cmd << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "results")) << "a bad plan runs nothing";
}

TEST_F(E2E, MissingCyclictestIsAnInfraErrorWhileOtherCellsAreMeasured) {
  auto bin = path_without_cyclictest();
  auto plan = write_plan("plan.toml", kBothEngines);
  auto r = vmlat({"run", plan.string(), "--junit", (dir_ / "junit.xml").string()}, {{"PATH", bin.string()}});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("rt-tests"), std::string::npos) << "the error names the package: " << r.out;
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(run["cells"][0]["status"], "infra-error");
  EXPECT_EQ(run["cells"][1]["status"], "measured");
  auto failed = json::parse(read(run_dir / "cells" / "host-none-cyclictest-1ms" / "result.json"));
  EXPECT_EQ(failed["gates"][0]["verdict"], "error") << "an unmeasured cell never passes";
  auto junit = read(dir_ / "junit.xml");
  EXPECT_NE(junit.find("<error type=\"infra-error\""), std::string::npos) << junit;
}

TEST_F(E2E, SigintStopsEverythingAndKeepsAReadablePartialResult) {
  auto plan = write_plan("plan.toml", quick_plan("", "20s"));
  auto out = dir_ / "stdout", err = dir_ / "stderr";
  auto p = Process::spawn(ProcessSpec{{kVmlat.string(), "run", plan.string(), "--only", "workload=stress"}, {}, out, err, dir_});
  // Wait until the first cell with stress is measuring, then interrupt.
  bool stress_seen = false;
  for (int i = 0; i < 600 && !stress_seen; ++i) {
    std::this_thread::sleep_for(100ms);
    if (!fs::exists(dir_ / "results")) continue;
    for (const auto& run : fs::directory_iterator(dir_ / "results")) {
      auto log = read(run.path() / "cells" / "host-stress-cyclictest-1ms" / "cell.log");
      if (log.find("phase measure") != std::string::npos) stress_seen = true;
    }
  }
  ASSERT_TRUE(stress_seen) << read(err);
  std::this_thread::sleep_for(2s);
  ::kill(p.pid(), SIGINT);
  auto status = p.wait(Clock::now() + 60s, false);
  EXPECT_EQ(status.exit_code, 130) << status.describe() << read(err);
  EXPECT_EQ(count_leftovers(), 0);
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(run["status"], "interrupted");
  EXPECT_EQ(run["exit_code"], 130);
  int interrupted = 0, not_run = 0, measured = 0;
  for (const auto& c : run["cells"]) {
    if (c["status"] == "interrupted") {
      ++interrupted;
      auto result = json::parse(read(run_dir / c["dir"].get<std::string>() / "result.json"));
      EXPECT_EQ(result["status"], "interrupted");
      // The probe was asked to stop and print what it had: partial data
      // (about 2s of the 20s at 1ms).
      ASSERT_FALSE(result["merged"].is_null()) << result.dump(1);
      EXPECT_GT(result["merged"]["stats"]["samples"].get<long>(), 500);
      EXPECT_LT(result["merged"]["stats"]["samples"].get<long>(), 15000);
    }
    if (c["status"] == "not-run") ++not_run;
    if (c["status"] == "measured") ++measured;
  }
  EXPECT_EQ(interrupted, 1) << run["cells"].dump(1);
  EXPECT_EQ(not_run, 1);
  EXPECT_EQ(measured + interrupted + not_run, 2);
}

TEST_F(E2E, EveryCommandHasHelp) {
  for (const std::string cmd : {"run", "validate", "plan", "plugins", "version", "lab", "export"}) {
    auto r = vmlat({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("usage: vmlat " + cmd), std::string::npos) << r.out;
  }
  auto r = vmlat({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("exit codes"), std::string::npos);
  auto bad = vmlat({"frobnicate"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("unknown command 'frobnicate'"), std::string::npos);
  auto bad_opt = vmlat({"run", "--bogus"});
  EXPECT_EQ(bad_opt.code, 2);
}

TEST_F(E2E, PlanCommandListsCells) {
  auto plan = write_plan("plan.toml", quick_plan(R"(
[[gate]]
name = "stress-only"
bound = "1s"
match = { workload = "stress" }
)"));
  auto r = vmlat({"plan", plan.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto cells = json::parse(r.out);
  ASSERT_EQ(cells.size(), 4u);
  EXPECT_EQ(cells[0]["id"], "host-none-cyclictest-1ms");
  EXPECT_TRUE(cells[0]["gates"].empty());
  EXPECT_EQ(cells[3]["id"], "host-stress-native-1ms");
  EXPECT_EQ(cells[3]["gates"][0], "stress-only");
}

TEST_F(E2E, PlanExportSettingsApplyAndAnExportFailureExits4) {
  // Port 9 (discard) on loopback: nothing listens, the push is refused at once.
  auto plan = write_plan("plan.toml", kOneNativeCell + R"([[gate]]
bound = "10s"
[export.prometheus]
push = "http://127.0.0.1:9"
push_timeout = "1s"
textfile = "textfile"
)");
  auto r = vmlat({"run", plan.string()});
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("vmlat push"), std::string::npos) << "says how to deliver later: " << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(run["exit_code"], 4);
  EXPECT_EQ(run["cells"][0]["status"], "measured");
  bool prom = false;
  for (const auto& e : fs::directory_iterator(dir_ / "textfile")) prom |= e.path().extension() == ".prom";
  EXPECT_TRUE(prom) << "the plan's textfile directory got the metrics";
}

TEST_F(E2E, ResumeRerunsOnlyTheCellsThatWereNotMeasured) {
  const std::string text = kBothEngines;
  auto plan = write_plan("plan.toml", text);
  auto first = vmlat({"run", plan.string()}, {{"PATH", path_without_cyclictest().string()}});
  ASSERT_EQ(first.code, 3) << first.out << first.err;
  auto run_dir = only_run_dir();
  auto before = json::parse(read(run_dir / "run.json"));
  ASSERT_EQ(before["cells"][1]["status"], "measured");
  auto native_max = before["cells"][1]["max_ns"];

  auto resumed = vmlat({"run", plan.string(), "--resume", run_dir.string(), "--junit", (dir_ / "junit.xml").string()});
  ASSERT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("2/2 cells measured"), std::string::npos) << resumed.out;
  auto after = json::parse(read(run_dir / "run.json"));
  EXPECT_EQ(after["run_id"], before["run_id"]);
  EXPECT_EQ(after["status"], "complete");
  EXPECT_EQ(after["cells"][0]["status"], "measured");
  EXPECT_FALSE(after["cells"][0].contains("kept"));
  EXPECT_EQ(after["cells"][1]["kept"], true);
  EXPECT_EQ(after["cells"][1]["max_ns"], native_max) << "the kept cell is not measured again";
  EXPECT_EQ(after["resumed"].size(), 1u);
  // The failed attempt is kept aside, not overwritten.
  auto aside = json::parse(read(run_dir / "attempts" / "host-none-cyclictest-1ms.1" / "result.json"));
  EXPECT_EQ(aside["status"], "infra-error");
  EXPECT_NE(read(dir_ / "junit.xml").find("tests=\"2\" failures=\"0\" errors=\"0\""), std::string::npos);

  // A changed plan cannot be resumed into the same run.
  write_plan("plan.toml", text + "# edited\n");
  auto refused = vmlat({"run", plan.string(), "--resume", run_dir.string()});
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("the plan changed"), std::string::npos) << refused.err;
}
