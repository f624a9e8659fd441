// `vmlat gate RUN...` (core/src/report/gate.cpp) on fan-out runs written to a
// scratch directory: each run a host's share of one plan (run.json with
// "share", share.json with the plan's cells), judged as one run of the plan.
// A cell in no run is never a pass; a failed gate wins; runs of another plan
// or another cut are refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gate.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/histogram.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

// The plan: c1..c4, shares alternating a, b.
const std::vector<std::pair<std::string, std::string>> kCut = {{"c1", "a"}, {"c2", "b"}, {"c3", "a"}, {"c4", "b"}};

struct Cell {
  std::string id;
  std::string status = "measured";
  std::string verdict = "pass";  // of its one gate
  std::string error;
};

json measured_series(long long max_ns) {
  Histogram h;
  h.add_bucket(5, 999);
  h.add_bucket(static_cast<std::uint64_t>(max_ns / 1000), 1);
  h.set_exact(std::chrono::nanoseconds(5000), std::chrono::nanoseconds(max_ns), std::chrono::nanoseconds(999 * 5000 + max_ns));
  return json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}};
}

class Gate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vmlat-gate-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A run of `host`'s share: its cells as given; run.json's share points at
  // share.json holding `cut` (the plan's cells and their hosts).
  std::string run(const std::string& host, const std::vector<Cell>& cells, const std::string& sha = "sha-1",
                  const std::vector<std::pair<std::string, std::string>>& cut = kCut, int exit_code = 0) {
    const fs::path d = dir_ / ("run-" + host + "-" + std::to_string(++runs_));
    fs::create_directories(d);
    json list = json::array(), plan_cells = json::array();
    for (const auto& [id, h] : cut) plan_cells.push_back(json{{"id", id}, {"host", h}});
    for (const auto& c : cells) {
      list.push_back(json{{"id", c.id}, {"host", host}, {"axes", {{"backend", "host"}, {"n", c.id}}}, {"status", c.status},
                          {"dir", "cells/" + c.id}});
      json gate{{"gate", "worst-case"}, {"verdict", c.verdict}, {"stat", "max"}, {"value_ns", 90000}, {"bound_ns", 50000},
                {"message", c.verdict == "fail" ? "max 90 µs exceeds bound 50 µs by 40 µs" : "max 90 µs"}};
      json r{{"schema", "vmlat-cell-result/1"}, {"run_id", d.filename().string()},
             {"cell", {{"id", c.id}, {"host", host}, {"axes", {{"backend", "host"}, {"n", c.id}}}, {"period_ns", 1000000}}},
             {"status", c.status}, {"error", c.error.empty() ? json(nullptr) : json(c.error)},
             {"host_facts", {{"hostname", host}}}, {"gates", c.status == "measured" ? json::array({gate}) : json::array()},
             {"merged", c.status == "measured" ? measured_series(90000) : json(nullptr)}, {"per_cpu", json::object()}};
      fs::create_directories(d / "cells" / c.id);
      std::ofstream(d / "cells" / c.id / "result.json") << r.dump(1);
    }
    json run{{"schema", "vmlat-run/1"}, {"run_id", d.filename().string()}, {"plan", {{"name", "p"}, {"sha256", sha}}},
             {"status", "complete"}, {"exit_code", exit_code}, {"started", "2026-12-06T00:00:00Z"}, {"cells", list},
             {"share", {{"hosts", {host}}, {"this_host", nullptr}, {"plan_cells", cut.size()}, {"file", "share.json"}}}};
    std::ofstream(d / "run.json") << run.dump(1);
    std::ofstream(d / "share.json") << json{{"schema", "vmlat-share/1"}, {"plan_sha256", sha}, {"cells", plan_cells}}.dump(1);
    return d.string();
  }

  int gate(std::vector<std::string> runs, std::string junit = "", std::string markdown = "") {
    out_.str("");
    err_.str("");
    return report::gate_command(GateCommand{std::move(runs), std::move(junit), std::move(markdown)}, out_, err_);
  }
  using GateCommand = report::GateCommand;

  fs::path dir_;
  int runs_ = 0;
  std::ostringstream out_, err_;
};

}  // namespace

TEST_F(Gate, EveryCellOfThePlanMeasuredInSomeRunPasses) {
  const auto a = run("a", {{"c1"}, {"c3"}}), b = run("b", {{"c2"}, {"c4"}});
  EXPECT_EQ(gate({a, b}), exit_code::pass) << out_.str() << err_.str();
  EXPECT_NE(out_.str().find("vmlat gate: PASS (exit 0): 4 cells of plan p (sha256 sha-1...) in 2 runs: 4 measured"), std::string::npos)
      << out_.str();
}

TEST_F(Gate, ACellInNoRunIsNeverAPass) {
  const auto a = run("a", {{"c1"}, {"c3"}});
  EXPECT_EQ(gate({a}), exit_code::infra) << out_.str();
  EXPECT_NE(out_.str().find("NOT MEASURED  c2 on b: in no run (b's job did not run"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("NOT MEASURED  c4 on b: in no run"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("2 measured, 2 not measured"), std::string::npos) << out_.str();
}

TEST_F(Gate, ACellThatItsRunCouldNotMeasureIsNotMeasured) {
  const auto a = run("a", {{"c1"}, {"c3"}}), b = run("b", {{"c2", "infra-error", "", "ssh: Connection refused"}, {"c4"}});
  EXPECT_EQ(gate({a, b}), exit_code::infra);
  EXPECT_NE(out_.str().find("NOT MEASURED  c2 on b (run run-b-2): infra-error: ssh: Connection refused"), std::string::npos)
      << out_.str();
}

TEST_F(Gate, AFailedGateWinsOverACellNotMeasuredAndNamesTheCellItsHostAndRun) {
  const auto a = run("a", {{"c1", "measured", "fail"}, {"c3"}});
  EXPECT_EQ(gate({a}), exit_code::gate_failed) << out_.str();
  const std::string out = out_.str();
  EXPECT_NE(out.find("FAIL  c1 on a (run run-a-1): worst-case: max 90 µs exceeds bound 50 µs by 40 µs"), std::string::npos) << out;
  EXPECT_LT(out.find("FAIL  c1"), out.find("NOT MEASURED  c2")) << "failures first";
  EXPECT_NE(out.find("vmlat gate: FAIL (exit 1)"), std::string::npos) << out;
}

TEST_F(Gate, ARunThatExitedOneByItsOwnRulesFailsTheGate) {
  // A flaky gate with [plan] flaky = "fail": verdict flaky, the run's exit 1.
  const auto a = run("a", {{"c1", "measured", "flaky"}, {"c3"}}, "sha-1", kCut, exit_code::gate_failed);
  const auto b = run("b", {{"c2"}, {"c4"}});
  EXPECT_EQ(gate({a, b}), exit_code::gate_failed) << out_.str();
  EXPECT_NE(out_.str().find("FAIL  run run-a-1 exited 1"), std::string::npos) << out_.str();
}

TEST_F(Gate, RunsOfAnotherPlanOrAnotherCutAreRefused) {
  const auto a = run("a", {{"c1"}, {"c3"}});
  EXPECT_EQ(gate({a, run("b", {{"c2"}, {"c4"}}, "sha-2")}), exit_code::usage);
  EXPECT_NE(err_.str().find("not of one plan"), std::string::npos) << err_.str();
  const std::vector<std::pair<std::string, std::string>> other_cut = {{"c1", "a"}, {"c2", "a"}, {"c3", "b"}, {"c4", "b"}};
  EXPECT_EQ(gate({a, run("b", {{"c3"}, {"c4"}}, "sha-1", other_cut)}), exit_code::usage);
  EXPECT_NE(err_.str().find("cut plan p differently: cell c2 is in the share of a in one, of b in the other"), std::string::npos)
      << err_.str();
  const std::vector<std::pair<std::string, std::string>> fewer = {{"c1", "a"}, {"c2", "b"}, {"c3", "a"}};
  EXPECT_EQ(gate({a, run("b", {{"c2"}}, "sha-1", fewer)}), exit_code::usage);
  EXPECT_NE(err_.str().find("select different cells"), std::string::npos) << err_.str();
  EXPECT_EQ(gate({}), exit_code::usage);
  EXPECT_EQ(gate({(dir_ / "nowhere").string()}), exit_code::usage);
}

TEST_F(Gate, ARunJsonNeverLeadsTheGateToAnotherFile) {
  const auto a = run("a", {{"c1"}, {"c3"}});
  json doc;
  std::ifstream(fs::path(a) / "run.json") >> doc;
  doc["share"]["file"] = "../../etc/passwd";
  std::ofstream(fs::path(a) / "run.json") << doc.dump();
  EXPECT_EQ(gate({a}), exit_code::usage);
  EXPECT_NE(err_.str().find("share.file must be \"share.json\""), std::string::npos) << err_.str();
}

TEST_F(Gate, JUnitHasEveryCellOfThePlanAndMarkdownLeadsWithTheVerdict) {
  const auto a = run("a", {{"c1", "measured", "fail"}, {"c3"}});
  const std::string junit = (dir_ / "junit.xml").string(), md = (dir_ / "summary.md").string();
  EXPECT_EQ(gate({a}, junit, md), exit_code::gate_failed);
  std::stringstream j, m;
  j << std::ifstream(junit).rdbuf();
  m << std::ifstream(md).rdbuf();
  EXPECT_NE(j.str().find("tests=\"4\" failures=\"1\" errors=\"2\""), std::string::npos) << j.str();
  EXPECT_NE(j.str().find("classname=\"p.c2\""), std::string::npos) << "a cell in no run is a test case too";
  EXPECT_EQ(m.str().rfind("## vmlat gate: FAIL (exit 1)", 0), 0u) << m.str();
  EXPECT_NE(m.str().find("- **NOT MEASURED** c4 on b: in no run"), std::string::npos) << m.str();
  // An output that cannot be written never hides the verdict; a pass becomes 3.
  EXPECT_EQ(gate({a}, (dir_ / "no" / "such" / "dir" / "j.xml").string()), exit_code::gate_failed);
  const auto b = run("b", {{"c2"}, {"c4"}}), a2 = run("a", {{"c1"}, {"c3"}});
  EXPECT_EQ(gate({a2, b}, "/proc/vmlat-no-such-file/j.xml"), exit_code::infra);
}
