// The fault-injection suite (CTest label "faults"): real runs on this
// machine, broken on purpose from the outside — processes killed or
// signalled mid-cell, vmlat itself SIGKILLed, a results directory with no
// space, a concurrent --resume, two runs at once, a FAKE cyclictest printing
// what the real one cannot be made to print, a FAULT-INJECTION backend that
// throws what no plugin should. After each: the exit code says what
// happened (never PASS for something not measured), every JSON file of the
// run directory parses, and nothing is left running.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "cli_fixture.hpp"
#include "vmlat/json.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using vmlat::testing::CliResult;
using vmlat::testing::descendants_named;
using vmlat::testing::leftover_processes;
using vmlat::testing::read_file;
using vmlat::testing::unparsable_json_files;

namespace {

const fs::path kTestPlugins = fs::path(VMLAT_BINARY_DIR) / "test-plugins";
const fs::path kFakeCyclictest = fs::path(VMLAT_SOURCE_DIR) / "tests/faults/fake-cyclictest";

class Faults : public vmlat::testing::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    become_subreaper();
    // A lock of our own: the suite's runs must not wait for (or be refused
    // by) someone else's measurement on this machine, and the two-runs test
    // decides who holds it.
    lock_dir_ = dir_ / "locks";
    env_["VMLAT_LOCK_DIR"] = lock_dir_.string();
  }
  void TearDown() override {
    EXPECT_EQ(leftover_processes(), std::vector<std::string>{}) << "processes left behind";
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    CliTest::TearDown();
  }

  CliResult run(std::vector<std::string> args, std::map<std::string, std::string> extra = {}) {
    auto env = env_;
    env.insert(extra.begin(), extra.end());
    return vmlat(std::move(args), env);
  }
  Process start(std::vector<std::string> args, std::map<std::string, std::string> extra = {},
                const std::string& tag = "bg-") {
    auto env = env_;
    env.insert(extra.begin(), extra.end());
    return start_vmlat(std::move(args), env, tag);
  }

  // Waits until a descendant named `comm` runs, then gives it `settle`.
  pid_t wait_for(const std::string& comm, std::chrono::milliseconds settle = 700ms) {
    for (auto until = Clock::now() + 60s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
      auto pids = descendants_named(comm);
      if (!pids.empty()) {
        std::this_thread::sleep_for(settle);
        return pids.front();
      }
    }
    ADD_FAILURE() << "no " << comm << " process appeared";
    return -1;
  }

  json run_json(const fs::path& run_dir) { return json::parse(read_file(run_dir / "run.json")); }

  // Nothing in run.json claims more than what is on disk.
  void expect_truthful(const fs::path& run_dir) {
    EXPECT_EQ(unparsable_json_files(dir_), std::vector<std::string>{});
    auto run = run_json(run_dir);
    for (const auto& c : run["cells"]) {
      if (c.value("status", "") != "measured") continue;
      auto result = run_dir / "cells" / c["id"].get<std::string>() / "result.json";
      ASSERT_TRUE(fs::exists(result)) << c["id"] << " is 'measured' in run.json without its result.json";
      EXPECT_EQ(json::parse(read_file(result))["status"], "measured");
    }
  }

  fs::path small_tmpfs(const std::string& size) {
    auto where = dir_ / ("tmpfs-" + size);
    fs::create_directories(where);
    std::string options = "size=" + size;
    if (::mount("tmpfs", where.c_str(), "tmpfs", 0, options.c_str()) != 0) return {};
    mounts_.push_back(where);
    return where;
  }

  fs::path lock_dir_;
  std::map<std::string, std::string> env_;
  std::vector<fs::path> mounts_;
};

// Two cells, both on CPU 0: one per engine.
std::string two_engines(const std::string& duration, const std::string& extra = "") {
  return R"([plan]
duration = ")" + duration + R"("
cpus = [0]
[backend.host]
[probe.ct]
plugin = "cyclic"
[probe.native]
plugin = "cyclic"
engine = "native"
[matrix]
probe = ["ct", "native"]
[[gate]]
name = "loose"
bound = "10s"
)" + extra;
}

std::string one_cell(const std::string& probe_table, const std::string& duration = "3s", const std::string& extra = "") {
  return "[plan]\nduration = \"" + duration + "\"\ncpus = [0]\n[backend.host]\n" + probe_table +
         "[[gate]]\nname = \"loose\"\nbound = \"10s\"\n" + extra;
}
const std::string kCyclictest = "[probe.ct]\nplugin = \"cyclic\"\n";
const std::string kNative = "[probe.native]\nplugin = \"cyclic\"\nengine = \"native\"\n";

json cell_result(const fs::path& run_dir, const std::string& id) {
  return json::parse(read_file(run_dir / "cells" / id / "result.json"));
}

}  // namespace

// --------------------------------------------------------- killed processes --

TEST_F(Faults, ProbeKilledMidCellIsAnInfraErrorAndTheOtherCellIsKept) {
  for (std::string probe : {"cyclictest", "vmlat-probe"}) {
    SCOPED_TRACE(probe);
    fs::remove_all(dir_ / "results");
    auto plan = write_plan("plan.toml", two_engines("4s"));
    auto p = start({"run", plan.string(), "--quiet"});
    pid_t victim = wait_for(probe);
    ASSERT_GT(victim, 0);
    ::kill(victim, SIGKILL);
    auto r = finish(p);
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    auto run_dir = only_run_dir();
    auto killed = cell_result(run_dir, probe == "cyclictest" ? "host-none-ct-1ms" : "host-none-native-1ms");
    auto other = cell_result(run_dir, probe == "cyclictest" ? "host-none-native-1ms" : "host-none-ct-1ms");
    EXPECT_EQ(killed["status"], "infra-error");
    EXPECT_NE(killed["error"].get<std::string>().find("signal 9"), std::string::npos) << killed["error"];
    EXPECT_EQ(killed["gates"][0]["verdict"], "error");
    EXPECT_EQ(other["status"], "measured");
    EXPECT_GT(other["merged"]["stats"]["samples"].get<long long>(), 0);
    // The killed cell keeps what it has: its log and the probe's raw output.
    EXPECT_TRUE(fs::exists(run_dir / "cells" / killed["cell"]["id"].get<std::string>() / "cell.log"));
    expect_truthful(run_dir);
    EXPECT_EQ(leftover_processes(), std::vector<std::string>{});
  }
}

TEST_F(Faults, StressNgKilledMidCellKeepsTheMeasurementAsEvidenceButIsNoPass) {
  auto plan = write_plan("plan.toml", one_cell(kNative, "4s", "[workload.stress]\nworkers = 1\n"));
  auto p = start({"run", plan.string(), "--quiet"});
  wait_for("vmlat-probe");
  auto leaders = descendants_named("stress-ng");
  ASSERT_FALSE(leaders.empty());
  for (pid_t pid : leaders) ::kill(pid, SIGKILL);  // the leader and any worker still named stress-ng
  auto r = finish(p);
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
  auto run_dir = only_run_dir();
  auto result = cell_result(run_dir, "host-stress-native-1ms");
  EXPECT_EQ(result["status"], "infra-error");
  EXPECT_NE(result["error"].get<std::string>().find("stress-ng"), std::string::npos) << result["error"];
  // Partial data kept: the probe's histogram is in result.json.
  ASSERT_TRUE(result["merged"].is_object());
  EXPECT_GT(result["merged"]["stats"]["samples"].get<long long>(), 0);
  expect_truthful(run_dir);
}

// ------------------------------------------------ signals from the outside --

TEST_F(Faults, ProbeSignalledFromOutsideIsNeverAPass) {
  struct Case {
    std::string probe_table, process;
    int signal;
  };
  for (const auto& c : {Case{kCyclictest, "cyclictest", SIGINT}, Case{kCyclictest, "cyclictest", SIGTERM},
                        Case{kNative, "vmlat-probe", SIGINT}, Case{kNative, "vmlat-probe", SIGTERM}}) {
    SCOPED_TRACE(c.process + " " + std::to_string(c.signal));
    fs::remove_all(dir_ / "results");
    auto plan = write_plan("plan.toml", one_cell(c.probe_table, "4s"));
    auto p = start({"run", plan.string(), "--quiet"});
    pid_t victim = wait_for(c.process, 1000ms);
    ASSERT_GT(victim, 0);
    ::kill(victim, c.signal);
    auto r = finish(p);
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
    auto run_dir = only_run_dir();
    auto run = run_json(run_dir);
    EXPECT_EQ(run["exit_code"], 3);
    EXPECT_EQ(run["cells"][0]["status"], "infra-error");
    std::string error = run["cells"][0]["error"];
    EXPECT_TRUE(error.find("stopped early") != std::string::npos || error.find("did not send") != std::string::npos) << error;
    expect_truthful(run_dir);
  }
}

// ------------------------------------------------------- vmlat SIGKILLed --

TEST_F(Faults, VmlatKilledMidCellIsAbandonedAndResumeMeasuresTheCellAgain) {
  auto plan = write_plan("plan.toml", two_engines("3s"));
  auto p = start({"run", plan.string(), "--quiet"});
  wait_for("vmlat-probe");  // the second cell: the first is measured by now
  ::kill(p.pid(), SIGKILL);
  finish(p);
  // The probe was vmlat's child (PR_SET_PDEATHSIG) and dies with it.
  for (auto until = Clock::now() + 5s; Clock::now() < until && !leftover_processes().empty();)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(leftover_processes(), std::vector<std::string>{});
  auto run_dir = only_run_dir();
  EXPECT_EQ(unparsable_json_files(dir_), std::vector<std::string>{});
  EXPECT_EQ(run_json(run_dir)["status"], "running");
  // Nothing outside the run directory: the probe's scratch lived in .work.
  // Whoever reads it now sees an abandoned run.
  auto metrics = run({"metrics", run_dir.string()});
  EXPECT_EQ(metrics.code, 0) << metrics.err;

  auto r = run({"run", plan.string(), "--resume", run_dir.string(), "--quiet"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("abandoned"), std::string::npos) << r.err;
  auto run = run_json(run_dir);
  EXPECT_EQ(run["status"], "complete");
  EXPECT_EQ(run["cells"][0]["kept"], true);               // ct: measured before the kill
  EXPECT_EQ(run["cells"][1].value("kept", false), false);  // native: measured again
  EXPECT_EQ(run["cells"][1]["status"], "measured");
  EXPECT_TRUE(fs::exists(run_dir / "attempts" / "host-none-native-1ms.1" / "cell.log"));
  expect_truthful(run_dir);
}

// ------------------------------------------------------------- full disk --

TEST_F(Faults, ResultsOnATmpfsTooSmallAreNeverReportedMeasured) {
  auto small = small_tmpfs("16k");
  if (small.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  auto plan = write_plan("plan.toml", one_cell(kCyclictest, "1s"));
  auto r = run({"run", plan.string(), "--results", small.string(), "--quiet"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  fs::path run_dir;
  for (const auto& e : fs::directory_iterator(small))
    if (e.is_directory() && !e.is_symlink()) run_dir = e.path();
  ASSERT_FALSE(run_dir.empty());
  expect_truthful(run_dir);
}

TEST_F(Faults, ResultJsonThatCannotBeWrittenMakesTheCellAnInfraError) {
  // The disk fills up after the measurement, just before the core writes
  // result.json: the FAULT-INJECTION backend fills it in teardown.
  auto small = small_tmpfs("4m");
  if (small.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  auto plan = write_plan("plan.toml", R"([plan]
duration = "1s"
cpus = [0]
[backend.faulty]
plugin = "fault-backend"
fill_disk = true
[probe.ct]
plugin = "cyclic"
[[gate]]
bound = "10s"
)");
  auto r = run({"run", plan.string(), "--results", small.string(), "--plugin-dir", kTestPlugins.string(), "--quiet"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("cannot write result.json"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
  fs::path run_dir;
  for (const auto& e : fs::directory_iterator(small))
    if (e.is_directory() && !e.is_symlink()) run_dir = e.path();
  ASSERT_FALSE(run_dir.empty());
  EXPECT_FALSE(fs::exists(run_dir / "cells/faulty-none-ct-1ms/result.json"));
  auto run = run_json(run_dir);  // the last rewrite that fitted: never "measured"
  EXPECT_NE(run["cells"][0]["status"], "measured");
  expect_truthful(run_dir);
}

// ------------------------------------------------- concurrent vmlat runs --

TEST_F(Faults, ResumingARunThatIsStillRunningIsRefused) {
  auto plan = write_plan("plan.toml", one_cell(kNative, "4s"));
  auto p = start({"run", plan.string(), "--quiet"});
  wait_for("vmlat-probe", 200ms);
  auto run_dir = only_run_dir();
  auto second = run({"run", plan.string(), "--resume", run_dir.string(), "--quiet"});
  EXPECT_EQ(second.code, 2) << second.out << second.err;
  EXPECT_NE(second.err.find("in progress"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("pid " + std::to_string(p.pid())), std::string::npos) << second.err;
  auto first = finish(p);
  EXPECT_EQ(first.code, 0) << first.out << first.err;
  EXPECT_FALSE(fs::exists(run_dir / "attempts"));  // the running run's cells were not touched
  auto run = run_json(run_dir);
  EXPECT_EQ(run["exit_code"], 0);
  EXPECT_EQ(run["cells"][0]["status"], "measured");
  expect_truthful(run_dir);
}

TEST_F(Faults, TwoRunsAtOnceOnOneHostNeverMeasureTogether) {
  auto plan = write_plan("plan.toml", one_cell(kNative, "3s"));
  auto first = start({"run", plan.string(), "--quiet", "--results", (dir_ / "results").string()}, {}, "first-");
  wait_for("vmlat-probe", 100ms);
  // --no-wait: refused at once, naming the run that measures.
  auto t0 = Clock::now();
  auto refused = run({"run", plan.string(), "--no-wait", "--results", (dir_ / "other").string(), "--quiet"});
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(refused.code, 3) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("busy"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("pid " + std::to_string(first.pid())), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir_ / "other"));  // nothing was started
  // Without --no-wait: waits, then measures after the first is done.
  auto second = run({"run", plan.string(), "--results", (dir_ / "other").string(), "--quiet"});
  EXPECT_EQ(second.code, 0) << second.out << second.err;
  EXPECT_NE(second.err.find("waiting for run"), std::string::npos) << second.err;
  auto first_done = finish(first, "first-");
  EXPECT_EQ(first_done.code, 0) << first_done.err;
  auto first_run = only_run_dir();
  fs::path second_run;
  for (const auto& e : fs::directory_iterator(dir_ / "other"))
    if (e.is_directory() && !e.is_symlink()) second_run = e.path();
  auto first_finished = cell_result(first_run, "host-none-native-1ms")["timings"]["finished"].get<std::string>();
  auto second_started = cell_result(second_run, "host-none-native-1ms")["timings"]["started"].get<std::string>();
  EXPECT_LE(first_finished, second_started) << "the two runs measured at the same time";
}

// -------------------------------------------------------- a lying probe --

TEST_F(Faults, FakeCyclictestOutputIsAPreciseInfraError) {
  auto bin = dir_ / "fake-bin";
  fs::create_directories(bin);
  fs::create_symlink(kFakeCyclictest, bin / "cyclictest");
  std::string path = bin.string() + ":" + std::getenv("PATH");
  struct Case {
    std::string mode, expect;
  };
  for (const auto& c : {Case{"garbage", "cyclictest JSON"}, Case{"truncated", "cyclictest JSON"},
                        Case{"nothing", "cyclictest JSON"}, Case{"double", "implausible result on CPU 0: 4000 samples"}}) {
    SCOPED_TRACE(c.mode);
    fs::remove_all(dir_ / "results");
    auto plan = write_plan("plan.toml", one_cell(kCyclictest, "2s"));
    auto r = run({"run", plan.string(), "--quiet"}, {{"PATH", path}, {"VMLAT_FAKE_CYCLICTEST", c.mode}});
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
    auto run_dir = only_run_dir();
    auto result = cell_result(run_dir, "host-none-ct-1ms");
    EXPECT_EQ(result["status"], "infra-error");
    EXPECT_NE(result["error"].get<std::string>().find(c.expect), std::string::npos) << result["error"];
    expect_truthful(run_dir);
  }
}

// --------------------------------------------------- a plugin that throws --

TEST_F(Faults, PluginThrowingAnythingIsAnInfraErrorOfItsCellWithTeardown) {
  struct Case {
    std::string where, what, expect;
  };
  for (const auto& c : {Case{"boot", "int", "threw an exception of type 'int' (not a std::exception) during boot"},
                        Case{"prepare", "string", "exception of type 'std::__cxx11::basic_string"},
                        Case{"probe_target", "std", "injected std::runtime_error in probe_target"},
                        Case{"teardown", "int", "teardown of backend 'fault-backend' failed"}}) {
    SCOPED_TRACE(c.where + "/" + c.what);
    fs::remove_all(dir_ / "results");
    auto marker = dir_ / "teardown.marker";
    fs::remove(marker);
    auto plan = write_plan("plan.toml", R"([plan]
duration = "1s"
cpus = [0]
[backend.faulty]
plugin = "fault-backend"
throw_in = ")" + c.where + R"("
throw_what = ")" + c.what + R"("
teardown_marker = ")" + marker.string() + R"("
[probe.native]
plugin = "cyclic"
engine = "native"
[[gate]]
bound = "10s"
)");
    auto r = run({"run", plan.string(), "--plugin-dir", kTestPlugins.string(), "--quiet"});
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_EQ(r.out.find("PASS"), std::string::npos) << r.out;
    auto run_dir = only_run_dir();
    auto run = run_json(run_dir);
    EXPECT_EQ(run["status"], "complete");
    EXPECT_EQ(run["exit_code"], 3);
    auto result = cell_result(run_dir, "faulty-none-native-1ms");
    EXPECT_EQ(result["status"], "infra-error");
    EXPECT_NE(result["error"].get<std::string>().find(c.expect), std::string::npos) << result["error"];
    EXPECT_NE(read_file(marker).find("teardown faulty-none-native-1ms"), std::string::npos) << "teardown did not run";
    expect_truthful(run_dir);
  }
}
