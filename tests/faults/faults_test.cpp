// The fault-injection suite (CTest label "faults"): real runs on this
// machine, broken on purpose from the outside — processes killed or
// signalled mid-cell, vmlat itself SIGKILLed, a results directory with no
// space, a concurrent --resume, two runs at once, a FAKE cyclictest printing
// what the real one cannot be made to print, a FAULT-INJECTION backend that
// throws what no plugin should. After each: the exit code says what
// happened (never PASS for something not measured), every JSON file of the
// run directory parses, and nothing is left running.
#include <algorithm>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "cli_fixture.hpp"
#include "session_store.hpp"
#include "vmlat/json.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using vmlat::testing::CliResult;
using vmlat::testing::descendants_named;
using vmlat::testing::leftover_processes;
using vmlat::testing::read_file;
using vmlat::testing::unparsable_json_files;
using vmlat::testing::kVmlat;

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
      // The measuring process, not the plugin's `cyclictest --help` feature
      // check of the same name (under load it lives long enough to be seen),
      // and one that is still there once the measurement is under way.
      auto measuring = [&] {
        std::vector<pid_t> found;
        for (pid_t pid : descendants_named(comm)) {
          const std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
          if (cmdline.find("--help") == std::string::npos && cmdline.find("--version") == std::string::npos)
            found.push_back(pid);
        }
        return found;
      };
      auto pids = measuring();
      if (!pids.empty()) {
        std::this_thread::sleep_for(settle);
        const auto still = measuring();
        for (pid_t pid : pids)
          if (std::find(still.begin(), still.end(), pid) != still.end()) return pid;
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

// A monitor runs for days beside a guest: whatever a plugin throws from
// whichever phase, the monitor ends with its documented exit code (3: the
// cell could not be measured at all, or its last teardown failed), the
// backend was torn down, every file of the session parses and nothing is
// left running (the suite's TearDown).
TEST_F(Faults, MonitorWithAPluginThrowingAnythingFromAnyPhaseExits3AndTearsDown) {
  struct Case {
    std::string backend_throw_in, probe_throw_in;
  };
  for (const auto& c : {Case{"prepare", ""}, Case{"boot", ""}, Case{"probe_target", ""}, Case{"teardown", ""},
                        Case{"", "run"}, Case{"", "stream"}}) {
    for (const std::string what : {"int", "string", "std"}) {
      SCOPED_TRACE("backend " + c.backend_throw_in + " probe " + c.probe_throw_in + " / " + what);
      const auto results = dir_ / ("monitor-" + c.backend_throw_in + c.probe_throw_in + "-" + what);
      const auto marker = dir_ / "teardown.marker";
      fs::remove(marker);
      auto plan = write_plan("monitor.toml", R"([plan]
period = "1ms"
cpus = [0]
[backend.faulty]
plugin = "fault-backend"
throw_in = ")" + c.backend_throw_in + R"("
throw_what = ")" + what + R"("
teardown_marker = ")" + marker.string() + R"("
[probe.fixed]
plugin = "fixed-probe"
throw_in = ")" + c.probe_throw_in + R"("
throw_what = ")" + what + R"("
)");
      auto r = run({"monitor", plan.string(), "--window", "300ms", "--for", "5s", "--listen", "127.0.0.1:0", "--results",
                    results.string(), "--plugin-dir", kTestPlugins.string()});
      EXPECT_EQ(r.code, 3) << r.out << r.err;
      EXPECT_NE(read_file(marker).find("teardown faulty-none-fixed-1ms"), std::string::npos) << "teardown did not run";
      fs::path session;
      for (const auto& e : fs::directory_iterator(results))
        if (e.path().filename().string().rfind("monitor-", 0) == 0) session = e.path();
      ASSERT_FALSE(session.empty()) << r.out << r.err;
      EXPECT_EQ(unparsable_json_files(session), std::vector<std::string>{});
      const json doc = json::parse(read_file(session / "session.json"));
      EXPECT_EQ(doc["status"], "failed");
      const auto records = session::read_records(session);
      EXPECT_EQ(records.errors, std::vector<std::string>{});
      // Windows only where the backend failed at its last teardown.
      EXPECT_EQ(doc["windows"].get<int>() > 0, c.backend_throw_in == "teardown") << doc.dump();
    }
  }
}

// ------------------------------------------------ verdicts a gate can trust --

class Verdicts : public Faults {
 protected:
  std::map<std::string, std::string> fake(const std::string& mode) {
    auto bin = dir_ / "fake-bin";
    fs::create_directories(bin);
    if (!fs::exists(bin / "cyclictest")) fs::create_symlink(kFakeCyclictest, bin / "cyclictest");
    return {{"PATH", bin.string() + ":" + std::getenv("PATH")}, {"VMLAT_FAKE_CYCLICTEST", mode},
            {"VMLAT_FAKE_STATE", (dir_ / "fake.state").string()}};
  }
  std::string plan_with_retest(int retest) {
    return one_cell(kCyclictest, "1s", "") + "\n" + R"([[gate]]
name = "tight"
bound = "1ms"
retest = )" + std::to_string(retest) + "\n";
  }
};

TEST_F(Verdicts, AFailureThatPassesOnRetestIsFlakyAndExits0) {
  auto plan = write_plan("plan.toml", plan_with_retest(2));
  auto r = run({"run", plan.string(), "--quiet", "--junit", (dir_ / "junit.xml").string()}, fake("spike-once"));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("FLAKY: max 5.00ms exceeds bound 1.00ms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("passed on retest 1 of 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 flaky"), std::string::npos) << r.out;
  auto run_dir = only_run_dir();
  auto result = cell_result(run_dir, "host-none-ct-1ms");
  json tight;
  for (const auto& g : result["gates"])
    if (g["gate"] == "tight") tight = g;
  EXPECT_EQ(tight["verdict"], "flaky");
  EXPECT_EQ(tight["value_ns"], 5000000);  // the first attempt stays the cell's result
  ASSERT_EQ(result["retests"].size(), 1u);
  EXPECT_EQ(result["retests"][0]["gates"]["tight"], "pass");
  EXPECT_TRUE(fs::exists(run_dir / "attempts/host-none-ct-1ms.retest1/result.json"));
  auto junit = read_file(dir_ / "junit.xml");
  EXPECT_NE(junit.find("<flakyFailure"), std::string::npos) << junit;
  EXPECT_NE(junit.find("failures=\"0\""), std::string::npos) << junit;
  auto metrics = run({"metrics", run_dir.string()});
  bool flaky_exported = false;
  std::istringstream lines(metrics.out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("vmlat_gate_flaky{", 0) == 0 && line.find("gate=\"tight\"") != std::string::npos && line.substr(line.size() - 2) == " 1")
      flaky_exported = true;
  EXPECT_TRUE(flaky_exported) << metrics.out;
  expect_truthful(run_dir);
}

TEST_F(Verdicts, AFailureThatReproducesOnEveryRetestFailsAndExits1) {
  auto plan = write_plan("plan.toml", plan_with_retest(2));
  auto r = run({"run", plan.string(), "--quiet"}, fake("spike"));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("failed again on 2 retests: reproduced"), std::string::npos) << r.out;
  auto run_dir = only_run_dir();
  auto result = cell_result(run_dir, "host-none-ct-1ms");
  EXPECT_EQ(result["retests"].size(), 2u);
  EXPECT_TRUE(fs::exists(run_dir / "attempts/host-none-ct-1ms.retest2/result.json"));
  expect_truthful(run_dir);
}

TEST_F(Verdicts, FlakyCountsAsFailedWhenThePlanSaysSo) {
  auto plan = write_plan("plan.toml", "[plan]\nflaky = \"fail\"\n" + plan_with_retest(1).substr(std::string("[plan]\n").size()));
  auto r = run({"run", plan.string(), "--quiet"}, fake("spike-once"));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("counted as failed"), std::string::npos) << r.out;
}

// [[expect]] claims over FIXED probes (every sample of "low" at 5us, of
// "high" at 50us): judged after the run into run.json, the summary and JUnit;
// only a violated claim with gate = true fails the run; `vmlat report` judges
// them again, over both runs when merged.
TEST_F(Verdicts, ClaimsAreJudgedAfterTheRunAndOnlyAGatingViolationFails) {
  auto plan_text = [](bool gate) {
    return std::string(R"([plan]
name = "claims"
duration = "300ms"
cpus = [0]
[matrix]
probe = ["low", "high"]
[backend.host]
[probe.low]
plugin = "fixed-probe"
max_us = ["40"]
floor_us = 5
[probe.high]
plugin = "fixed-probe"
max_us = ["80"]
floor_us = 50
[[expect]]
name = "low below high"
stat = "p50"
smaller = { probe = "low" }
larger = { probe = "high" }
[[expect]]
name = "high below low"
stat = "p50"
smaller = { probe = "high" }
larger = { probe = "low" }
gate = )") + (gate ? "true" : "false") + R"(
[[expect]]
name = "max without a model"
smaller = { probe = "low" }
larger = { probe = "high" }
)";
  };
  auto verdicts = [](const json& expects) {
    std::vector<std::string> v;
    for (const auto& e : expects) v.push_back(e["name"].get<std::string>() + ":" + e["verdict"].get<std::string>());
    return v;
  };
  const std::vector<std::string> expected{"low below high:holds", "high below low:violated", "max without a model:inconclusive"};
  const auto results = dir_ / "results";
  auto plan = write_plan("plan.toml", plan_text(false));
  auto r = run({"run", plan.string(), "--quiet", "--results", results.string(), "--plugin-dir", kTestPlugins.string(), "--junit",
                (dir_ / "junit.xml").string()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("claims: 1 hold, 1 violated, 1 inconclusive"), std::string::npos) << r.out;
  const fs::path first = fs::canonical(results / "latest");
  json run_doc = run_json(first);
  EXPECT_EQ(verdicts(run_doc["expects"]), expected);
  EXPECT_EQ(run_doc["summary"]["expects"], json({{"holds", 1}, {"violated", 1}, {"inconclusive", 1}, {"failed", 0}}));
  EXPECT_EQ(run_doc["expects"][0]["pairs"][0]["smaller"]["cell"], "host-none-low-1ms");
  EXPECT_EQ(run_doc["expects"][0]["pairs"][0]["smaller"]["low_ns"], 5000.0);
  EXPECT_NE(run_doc["expects"][2]["pairs"][0]["smaller"]["method"].get<std::string>().find("no tail model"), std::string::npos);
  auto junit = read_file(dir_ / "junit.xml");
  EXPECT_NE(junit.find("classname=\"claims.expect\" name=\"low below high\""), std::string::npos) << junit;
  EXPECT_NE(junit.find("<skipped message=\"inconclusive: "), std::string::npos) << junit;
  EXPECT_NE(junit.find("violated (not a gate"), std::string::npos) << junit;
  EXPECT_NE(junit.find("failures=\"0\""), std::string::npos) << junit;

  plan = write_plan("plan.toml", plan_text(true));
  r = run({"run", plan.string(), "--quiet", "--results", results.string(), "--plugin-dir", kTestPlugins.string(), "--junit",
           (dir_ / "junit.xml").string()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("(gate: fails the run)"), std::string::npos) << r.out;
  junit = read_file(dir_ / "junit.xml");
  EXPECT_NE(junit.find("<failure type=\"expect\""), std::string::npos) << junit;
  EXPECT_NE(junit.find("failures=\"1\""), std::string::npos) << junit;
  const fs::path second = fs::canonical(results / "latest");
  ASSERT_NE(first, second);

  auto report = run({"report", second.string(), "--format", "json", "--output", "-"});
  ASSERT_EQ(report.code, 0) << report.err;
  json doc = json::parse(report.out);
  EXPECT_EQ(verdicts(doc["expects"]), expected);
  EXPECT_EQ(doc["verdict"]["word"], "FAIL");
  EXPECT_NE(doc["verdict"]["detail"].get<std::string>().find("1 gating claim violated"), std::string::npos) << doc["verdict"];
  // Merged: each distinct claim once (the two runs' "high below low" differ
  // in gate), every low cell against every high cell of both runs.
  report = run({"report", first.string(), second.string(), "--format", "json", "--output", "-"});
  ASSERT_EQ(report.code, 0) << report.err;
  doc = json::parse(report.out);
  ASSERT_EQ(doc["expects"].size(), 4u) << doc["expects"].dump(1);
  EXPECT_EQ(doc["expects"][0]["pairs"].size(), 4u);
  EXPECT_EQ(doc["expects"][0]["verdict"], "holds");
  EXPECT_FALSE(doc["expects"][0]["pairs"][0]["smaller"]["run_id"].get<std::string>().empty());
  auto html = run({"report", first.string(), second.string(), "--output", (dir_ / "merged.html").string()});
  ASSERT_EQ(html.code, 0) << html.err;
  EXPECT_NE(read_file(dir_ / "merged.html").find("<section id=\"claims\">"), std::string::npos);
}

TEST_F(Verdicts, BisectMapsExitCodesForGitBisectRun) {
  auto plan = write_plan("plan.toml", plan_with_retest(0));
  EXPECT_EQ(run({"run", plan.string(), "--quiet", "--bisect"}, fake("spike")).code, 1);    // bad
  EXPECT_EQ(run({"run", plan.string(), "--quiet", "--bisect"}, fake("nothing")).code, 125);  // infra: skip
  auto good = write_plan("good.toml", one_cell(kCyclictest, "1s"));
  EXPECT_EQ(run({"run", good.string(), "--quiet", "--bisect"}, fake("spike")).code, 0);
  auto broken = write_plan("broken.toml", "[plan]\nduration = 1\n");
  auto r = run({"run", broken.string(), "--bisect"});
  EXPECT_EQ(r.code, 255) << r.err;  // a wrong plan stops the bisection, blames nothing
  EXPECT_NE(r.err.find("abort"), std::string::npos) << r.err;
  EXPECT_EQ(run({"run", "--no-such-option", "--bisect"}).code, 255);
}

// git bisect run vmlat run --bisect: a fixture repository whose plan gets an
// impossible bound from commit 5 on, with a broken lab at commit 6 (one that
// bisect tries after the first good one: it must be skipped, never blamed).
TEST_F(Verdicts, GitBisectRunFindsTheCommitThatMadeTheGateFail) {
  auto repo = dir_ / "repo";
  fs::create_directories(repo);
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", repo.string(), "-c", "user.email=t@t", "-c", "user.name=t"});
    auto p = Process::spawn(ProcessSpec{args, {}, dir_ / "git.out", dir_ / "git.err", {}});
    auto s = p.wait(Clock::now() + 600s, false);
    return std::pair<int, std::string>{s.exit_code, read_file(dir_ / "git.out") + read_file(dir_ / "git.err")};
  };
  ASSERT_EQ(git({"init", "-q"}).first, 0);
  for (int c = 1; c <= 8; ++c) {
    std::string bound = c >= 5 ? "1ns" : "10s";
    std::string backend = c == 6 ? "[backend.faulty]\nplugin = \"fault-backend\"\nthrow_in = \"boot\"\n" : "[backend.host]\n";
    std::ofstream(repo / "plan.toml") << "# commit " << c << "\n[plan]\nname = \"bisect\"\nduration = \"200ms\"\ncpus = [0]\n" << backend
                                      << "[probe.native]\nplugin = \"cyclic\"\nengine = \"native\"\n[[gate]]\nbound = \"" << bound << "\"\n";
    ASSERT_EQ(git({"add", "plan.toml"}).first, 0);
    ASSERT_EQ(git({"commit", "-q", "-m", "commit " + std::to_string(c)}).first, 0);
  }
  auto started = git({"bisect", "start", "HEAD", "HEAD~7"});
  ASSERT_EQ(started.first, 0) << started.second;
  auto [code, output] = git({"bisect", "run", "env", "VMLAT_LOCK_DIR=" + lock_dir_.string(), kVmlat.string(), "run",
                             (repo / "plan.toml").string(), "--bisect", "--quiet", "--results", (dir_ / "bisect-results").string(),
                             "--plugin-dir", kTestPlugins.string()});
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("is the first bad commit"), std::string::npos) << output;
  EXPECT_NE(output.find("commit 5"), std::string::npos) << output;
  EXPECT_NE(output.find("exit 3 -> 125, skip"), std::string::npos) << output;
  git({"bisect", "reset"});
}

// ------------------------------------------------- the guest image cache --

// Two runs that need the same guest image at once: one builds it, the other
// waits for it (build-guest holds the cache's lock), and both boot the same,
// intact image. A fresh cache with the kernel .debs of the machine's cache
// (hard links, no download), so that the build really happens.
TEST_F(Faults, TwoBuildsOfOneGuestImageAtOnceShareOneIntactImage) {
  const fs::path machine_debs = "/var/cache/vmlat/guests/debs";
  if (!fs::exists(machine_debs)) GTEST_SKIP() << "no cached kernel .debs yet (the kvm tests download them)";
  auto cache = dir_ / "guest-cache";
  fs::create_directories(cache);
  fs::copy(machine_debs, cache / "debs", fs::copy_options::create_hard_links | fs::copy_options::recursive);
  auto build_guest = fs::path(VMLAT_SOURCE_DIR) / "plugins/common/guest/images/build-guest";
  std::vector<std::string> argv{build_guest.string(), "--flavour", "nrt", "--cache", cache.string(), "--print-json"};
  auto a = Process::spawn(ProcessSpec{argv, {}, dir_ / "a.json", dir_ / "a.err", {}});
  auto b = Process::spawn(ProcessSpec{argv, {}, dir_ / "b.json", dir_ / "b.err", {}});
  auto sa = a.wait(Clock::now() + 600s, false), sb = b.wait(Clock::now() + 600s, false);
  ASSERT_TRUE(sa.success()) << read_file(dir_ / "a.err");
  ASSERT_TRUE(sb.success()) << read_file(dir_ / "b.err");
  auto ja = json::parse(read_file(dir_ / "a.json")), jb = json::parse(read_file(dir_ / "b.json"));
  EXPECT_EQ(ja["dir"], jb["dir"]);
  EXPECT_EQ(ja["hash"], jb["hash"]);
  fs::path image = ja["dir"].get<std::string>();
  EXPECT_NO_THROW((void)json::parse(read_file(image / "guest.json")));
  EXPECT_GT(fs::file_size(image / "vmlinuz"), 1000000u);
  // The initramfs is complete (zstd checks its own frames).
  auto check = Process::spawn(ProcessSpec{{"zstd", "-t", "-q", (image / "initramfs.img").string()}, {}, dir_ / "z.out", dir_ / "z.err", {}});
  EXPECT_TRUE(check.wait(Clock::now() + 120s, false).success()) << read_file(dir_ / "z.err");
  // Nothing half-built left beside it.
  for (const auto& e : fs::directory_iterator(cache)) {
    auto name = e.path().filename().string();
    EXPECT_TRUE(name == "debs" || name == ".lock" || e.path() == image || name.rfind(".stamps", 0) == 0) << name;
  }
}
