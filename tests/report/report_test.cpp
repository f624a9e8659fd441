// Unit tests of reports, compare and regression gates (core/src/report,
// core/src/regression.cpp) on result documents built in memory or written
// to a scratch run directory: tolerances, verdicts and exit codes, the seed
// table layout, the period sweep, escaping of hostile values, the plots.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <regex>

#include "compare.hpp"
#include "model.hpp"
#include "page_data.hpp"
#include "plots.hpp"
#include "plan.hpp"
#include "gates/evaluate.hpp"
#include "gates/regression.hpp"
#include "report.hpp"
#include "tails.hpp"
#include "run_store.hpp"
#include "text_escape.hpp"
#include "vmlat/histogram.hpp"

using namespace vmlat;
using namespace vmlat::report;
using RunView = vmlat::report::Run;  // gtest has a Test::Run
using std::chrono::microseconds;
using std::chrono::nanoseconds;
namespace fs = std::filesystem;

// Cells below are written {id, axes[, status[, max]]}: the other members keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

// A histogram with `n` samples spread over [lo_us, hi_us) and an exact max.
Histogram spread(std::uint64_t n, std::uint64_t lo_us, std::uint64_t hi_us, long long max_ns) {
  Histogram h;
  for (std::uint64_t i = 0; i < n; ++i) h.add_bucket(lo_us + i % (hi_us - lo_us), 1);
  h.add_bucket(static_cast<std::uint64_t>(max_ns / 1000), 1);
  h.set_exact(nanoseconds(static_cast<long long>(lo_us) * 1000), nanoseconds(max_ns), nanoseconds(static_cast<long long>(n) * lo_us * 1000));
  return h;
}

json series(const Histogram& h) { return json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}}; }

struct CellDoc {
  std::string id;
  std::vector<std::pair<std::string, std::string>> axes;
  std::string status = "measured";
  long long max_ns = 50000;
  std::string error;
  json host_facts = json{{"hostname", "h"}, {"kernel_release", "6.1.0"}, {"preempt_model", "PREEMPT_DYNAMIC"}, {"preempt_rt", false}};
  json facts = json::object();
  json gates = json::array();
  std::uint64_t floor_us = 0;  // > 0: every sample of the cell in [floor_us, floor_us + 5) us
};

json result_of(const CellDoc& c) {
  json axes = json::object();
  for (const auto& [k, v] : c.axes) axes[k] = v;
  json r{{"schema", "vmlat-cell-result/1"},
         {"run_id", "r"},
         {"cell", {{"id", c.id}, {"axes", axes}, {"host", "local"}, {"period_ns", 1000000}}},
         {"status", c.status},
         {"error", c.error.empty() ? json(nullptr) : json(c.error)},
         {"host_facts", c.host_facts},
         {"facts", c.facts},
         {"gates", c.gates},
         {"per_cpu", json::object()}};
  if (c.status == "measured") {
    // CPU 1 stays below 9us, so the merged max is the cell's max_ns (>= 10us in every test).
    Histogram h0 = spread(1000, 4, 9, c.max_ns), h1 = spread(1000, 3, 8, 9000);
    if (c.floor_us) h0 = h1 = spread(1000, c.floor_us, c.floor_us + 5, c.max_ns);
    Histogram merged = h0;
    merged.merge(h1);
    r["merged"] = series(merged);
    r["per_cpu"] = json{{"0", series(h0)}, {"1", series(h1)}};
  } else {
    r["merged"] = nullptr;
  }
  return r;
}

json run_of(const std::string& id, const std::string& plan, const std::vector<CellDoc>& cells) {
  json list = json::array();
  for (const auto& c : cells) {
    json axes = json::object();
    for (const auto& [k, v] : c.axes) axes[k] = v;
    list.push_back(json{{"id", c.id}, {"axes", axes}, {"status", c.status}, {"dir", "cells/" + c.id}});
  }
  return json{{"schema", "vmlat-run/1"}, {"run_id", id}, {"vmlat_version", "0.1.0"}, {"plan", {{"name", plan}}},
              {"status", "complete"}, {"exit_code", 0}, {"started", "2026-01-01T00:00:00Z"},
              {"hosts", {{"local", {{"hostname", "h"}, {"kernel_release", "6.1.0"}, {"preempt_rt", false}}}}},
              {"cells", list}};
}

StoredRun stored(const std::string& id, const std::vector<CellDoc>& cells, const std::string& plan = "p") {
  StoredRun s;
  s.dir = "/runs/" + id;
  s.run = run_of(id, plan, cells);
  for (const auto& c : cells) s.cells.push_back(result_of(c));
  return s;
}

void write_run(const fs::path& dir, const std::string& id, const std::vector<CellDoc>& cells) {
  fs::create_directories(dir);
  std::ofstream(dir / "run.json") << run_of(id, "p", cells).dump(1);
  for (const auto& c : cells) {
    fs::create_directories(dir / "cells" / c.id);
    std::ofstream(dir / "cells" / c.id / "result.json") << result_of(c).dump(1);
  }
}

std::vector<std::pair<std::string, std::string>> axes(std::string backend, std::string workload, std::string period = "1ms") {
  return {{"backend", backend}, {"workload", workload}, {"probe", "cyclictest"}, {"period", period}};
}

class ScratchDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vmlat-report-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(Tolerance, ParsesPercentagesAndDurations) {
  auto pct = parse_tolerance("12.5%");
  ASSERT_TRUE(pct);
  EXPECT_TRUE(pct->relative);
  EXPECT_DOUBLE_EQ(pct->fraction, 0.125);
  auto abs = parse_tolerance("20us");
  ASSERT_TRUE(abs);
  EXPECT_FALSE(abs->relative);
  EXPECT_EQ(abs->absolute, microseconds(20));
  std::string why;
  for (const char* bad : {"", "10", "-5%", "%", "ten%", "5 %", "1.2.3%", "nan%"}) {
    EXPECT_FALSE(parse_tolerance(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(Tolerance, PercentilesAreNeverTighterThanTheirOneMicrosecondResolution) {
  auto t = *parse_tolerance("10%");
  StatName max{"max", 0}, p99{"p99", 0.99};
  EXPECT_EQ(t.allowed(microseconds(5), max), nanoseconds(500));
  EXPECT_EQ(t.allowed(microseconds(5), p99), microseconds(1));  // 10% of 5us is below one bucket
  EXPECT_EQ(t.allowed(microseconds(500), p99), microseconds(50));
  auto zero = *parse_tolerance("0%");
  auto c = compare_statistic(max, microseconds(10), nanoseconds(10001), zero);
  EXPECT_TRUE(c.regression());
  EXPECT_FALSE(compare_statistic(max, microseconds(10), microseconds(10), zero).regression());
  EXPECT_FALSE(compare_statistic(p99, microseconds(10), microseconds(11), zero).regression());
  EXPECT_TRUE(compare_statistic(p99, microseconds(10), microseconds(12), zero).regression());
}

TEST(StatNames, AcceptWhatGatesAccept) {
  EXPECT_DOUBLE_EQ(parse_stat_name("p99.9")->quantile, 0.999);
  EXPECT_TRUE(parse_stat_name("max"));
  EXPECT_FALSE(parse_stat_name("p100"));
  EXPECT_FALSE(parse_stat_name("p"));
  EXPECT_FALSE(parse_stat_name("max2"));
}

TEST(StoredStatistic, ReadsStatsAndOtherPercentilesFromTheHistogram) {
  Histogram h = spread(1000, 10, 20, 90000);
  json s = series(h);
  EXPECT_EQ(*stored_statistic(s, {"max", 0}), nanoseconds(90000));
  EXPECT_EQ(*stored_statistic(s, {"p99", 0.99}), h.percentile(0.99));
  EXPECT_EQ(*stored_statistic(s, {"p75", 0.75}), h.percentile(0.75));  // not in stats: from the histogram
  EXPECT_FALSE(stored_statistic(json(nullptr), {"max", 0}));
  EXPECT_FALSE(stored_statistic(series(Histogram()), {"max", 0}));  // no samples
}

TEST(Compare, IdenticalRunsHaveNoRegression) {
  std::vector<CellDoc> cells = {{"a", axes("host", "none")}, {"b", axes("host", "stress")}};
  auto s1 = stored("r1", cells), s2 = stored("r1", cells);
  RunView base = make_run(s1), now = make_run(s2);
  auto c = compare_runs(base, now, CompareOptions{});
  EXPECT_EQ(c.exit_code(), 0);
  EXPECT_EQ(c.cells.size(), 2u);
  EXPECT_EQ(c.regressions(), 0);
  for (const auto& cc : c.cells) EXPECT_EQ(cc.changes.size(), 4u);  // p50, p99, p99.9, max
}

TEST(Compare, AWorseMaxBeyondToleranceIsARegressionNamingTheCellAndTheChange) {
  auto base_s = stored("r1", {{"a", axes("host", "none")}, {"b", axes("host", "stress"), "measured", 100000}});
  auto new_s = stored("r2", {{"a", axes("host", "none")}, {"b", axes("host", "stress"), "measured", 150000}});
  RunView base = make_run(base_s), now = make_run(new_s);
  auto c = compare_runs(base, now, CompareOptions{});
  EXPECT_EQ(c.exit_code(), 1);
  EXPECT_EQ(c.regressions(), 1);
  std::string text = compare_text(c);
  EXPECT_NE(text.find("REGRESSION b: max 100us -> 150us (+50.0us, +50.0%; allowed +10.0us; "), std::string::npos) << text;
  // One earlier run cannot show the spread between runs, and says so.
  EXPECT_NE(text.find("baseline: 1 earlier run (r1): the spread between runs cannot be judged"), std::string::npos) << text;
  // Regressions first in every rendering.
  json j = compare_json(c);
  EXPECT_EQ(j["cells"][0]["cell"], "b");
  EXPECT_EQ(j["cells"][0]["verdict"], "regressed");
  EXPECT_EQ(j["cells"][0]["stats"][3]["stat"], "max");
  EXPECT_EQ(j["cells"][0]["stats"][3]["verdict"], "regressed");
  EXPECT_EQ(j["cells"][0]["stats"][3]["method"], "tolerance");
  EXPECT_TRUE(j["cells"][0]["stats"][3]["confidence"].is_null());  // the tolerance rule states none
  EXPECT_EQ(j["cells"][0]["stats"][0]["verdict"], "unchanged");
  EXPECT_EQ(j["history"]["count"], 1);
  EXPECT_NE(compare_markdown(c).find("**REGRESSED**"), std::string::npos);
  // The same change within an absolute tolerance for max passes.
  CompareOptions wide;
  wide.per_stat["max"] = *parse_tolerance("60us");
  EXPECT_EQ(compare_runs(base, now, wide).exit_code(), 0);
  // And the other way round it is an improvement.
  auto back = compare_runs(now, base, CompareOptions{});
  EXPECT_EQ(back.exit_code(), 0);
  EXPECT_EQ(back.improvements(), 1);
}

namespace {
// Runs r0..r<n-1> of cells "a" (quiet) and "b", whose max is `max_us[i]` in run i.
struct History {
  explicit History(const std::vector<long long>& max_us) {
    for (std::size_t i = 0; i < max_us.size(); ++i)
      stored_runs.push_back(stored("r" + std::to_string(i),
                                   {{"a", axes("host", "none")}, {"b", axes("host", "stress"), "measured", max_us[i] * 1000}}));
    for (const auto& s : stored_runs) views.push_back(make_run(s));
    for (const auto& v : views) runs.push_back(&v);
  }
  // A new run "new" whose cell b has max `max_us`, compared with this history.
  Comparison against(long long max_us, const CompareOptions& options = {}) const {
    auto s = stored("new", {{"a", axes("host", "none")}, {"b", axes("host", "stress"), "measured", max_us * 1000}});
    RunView now = make_run(s);
    return compare_runs(runs, now, options);
  }
  std::deque<StoredRun> stored_runs;
  std::deque<RunView> views;
  std::vector<const RunView*> runs;
};
}  // namespace

TEST(Compare, AHistoryJudgesAgainstItsSpreadAtAStatedConfidence) {
  History h({100, 112, 95, 120, 104, 116, 98, 108});

  // Within the history's spread: no statistic regressed, and the text says how it judged.
  auto c = h.against(118);
  EXPECT_EQ(c.exit_code(), 0) << compare_text(c);
  EXPECT_EQ(c.family, 8u);  // 2 cells x 4 statistics, one family
  EXPECT_EQ(c.history.size(), 8u);
  ASSERT_EQ(c.cells.size(), 2u);
  const auto& bmax = c.cells[1].changes[3];
  EXPECT_EQ(bmax.stat.name, "max");
  EXPECT_EQ(bmax.base, microseconds(106));  // the median of the history
  EXPECT_EQ(bmax.test.runs, 8u);
  EXPECT_NE(bmax.verdict.method.find("loggumbel-pivot"), std::string::npos) << bmax.verdict.method;
  EXPECT_DOUBLE_EQ(bmax.verdict.confidence, 0.99);
  std::string text = compare_text(c);
  EXPECT_NE(text.find("baseline: 8 earlier runs (r0 .. r7): BASE is their median; verdicts at confidence 99% over 8 statistics"),
            std::string::npos)
      << text;

  // Far outside it: regressed, exit 1, the JSON names verdict and confidence.
  auto w = h.against(5000);
  EXPECT_EQ(w.exit_code(), 1) << compare_text(w);
  json j = compare_json(w);
  EXPECT_EQ(j["schema"], "vmlat-compare/2");
  EXPECT_EQ(j["cells"][0]["cell"], "b");
  EXPECT_EQ(j["cells"][0]["stats"][3]["verdict"], "regressed");
  EXPECT_DOUBLE_EQ(j["cells"][0]["stats"][3]["confidence"].get<double>(), 0.99);
  EXPECT_LE(j["cells"][0]["stats"][3]["p"].get<double>(), 0.01);
  // A stricter confidence is used and stated.
  CompareOptions strict;
  strict.confidence = 0.999;
  EXPECT_DOUBLE_EQ(compare_json(h.against(5000, strict))["cells"][0]["stats"][3]["confidence"].get<double>(), 0.999);
}

TEST(Compare, AnInconclusiveVerdictSaysWhatWouldMakeItConclusiveAndNeverFails) {
  // Maxima from 50us to 5ms: a history this noisy cannot see a 2x change.
  History h({50, 4000, 80, 900, 5000, 60, 2500, 120});
  auto c = h.against(3000);
  EXPECT_EQ(c.exit_code(), 0);
  ASSERT_EQ(c.cells[1].id, "b");
  EXPECT_TRUE(c.cells[1].changes[3].inconclusive()) << c.cells[1].changes[3].verdict.why;
  EXPECT_EQ(c.inconclusive_statistics(), 1);
  std::string text = compare_text(c);
  EXPECT_NE(text.find("INCONCLUSIVE b: max: the history is too noisy"), std::string::npos) << text;
  EXPECT_NE(compare_markdown(c).find("what would make them conclusive"), std::string::npos);
  EXPECT_EQ(compare_json(c)["cells"][1]["verdict"], "inconclusive");
}

TEST(Compare, ACellNotMeasuredInNewExits3AndARegressionStillWins) {
  std::vector<CellDoc> base_cells = {{"a", axes("host", "none")}, {"b", axes("host", "stress")}, {"c", axes("host", "x")}};
  auto base_s = stored("r1", base_cells);
  CellDoc broken{"b", axes("host", "stress"), "infra-error"};
  broken.error = "guest did not boot";
  auto new_s = stored("r2", {{"a", axes("host", "none")}, broken, {"d", axes("host", "y")}});  // c absent, d new
  RunView base = make_run(base_s), now = make_run(new_s);
  auto c = compare_runs(base, now, CompareOptions{});
  EXPECT_EQ(c.exit_code(), 3);
  ASSERT_EQ(c.not_measured_in_new.size(), 2u);
  EXPECT_EQ(c.not_measured_in_new[0].id, "b");
  EXPECT_EQ(c.not_measured_in_new[0].error, "guest did not boot");
  EXPECT_EQ(c.not_measured_in_new[1].id, "c");
  ASSERT_EQ(c.only_in_new.size(), 1u);
  EXPECT_EQ(c.only_in_new[0].id, "d");
  std::string text = compare_text(c);
  EXPECT_NE(text.find("NOT MEASURED in new: b (infra-error: guest did not boot)"), std::string::npos) << text;
  EXPECT_NE(text.find("NOT MEASURED in new: c (absent)"), std::string::npos) << text;
  EXPECT_NE(text.find("NO BASELINE: d"), std::string::npos) << text;

  auto worse_s = stored("r3", {{"a", axes("host", "none"), "measured", 900000}, broken});
  RunView worse = make_run(worse_s);
  EXPECT_EQ(compare_runs(base, worse, CompareOptions{}).exit_code(), 1);
}

TEST(Compare, SkippedInBothIsNeitherARegressionNorMissing) {
  CellDoc skipped{"rt", axes("host", "none"), "skipped"};
  skipped.error = "not runnable here";
  auto base_s = stored("r1", {{"a", axes("host", "none")}, skipped});
  auto new_s = stored("r2", {{"a", axes("host", "none")}, skipped});
  RunView base = make_run(base_s), now = make_run(new_s);
  auto c = compare_runs(base, now, CompareOptions{});
  EXPECT_EQ(c.exit_code(), 0);
  EXPECT_EQ(c.skipped_in_both.size(), 1u);
  // Measured last time, skipped now: coverage was lost.
  auto measured_s = stored("r0", {{"a", axes("host", "none")}, {"rt", axes("host", "none")}});
  RunView measured = make_run(measured_s);
  EXPECT_EQ(compare_runs(measured, now, CompareOptions{}).exit_code(), 3);
}

TEST(Model, VerdictLeadsWithTheWorstOutcome) {
  CellDoc failing{"a", axes("host", "none")};
  failing.gates = json::array({json{{"gate", "g"}, {"stat", "max"}, {"verdict", "fail"}, {"bound_ns", 10}, {"value_ns", 20}, {"excess_ns", 10}}});
  CellDoc ok{"b", axes("host", "none")};
  ok.gates = json::array({json{{"gate", "g"}, {"stat", "max"}, {"verdict", "pass"}, {"bound_ns", 10}, {"value_ns", 5}}});
  CellDoc broken{"c", axes("host", "none"), "infra-error"};
  auto s1 = stored("r", {failing, ok, broken});
  EXPECT_EQ(make_run(s1).verdict.word, "FAIL");
  auto s2 = stored("r", {ok, broken});
  EXPECT_EQ(make_run(s2).verdict.word, "INFRA ERROR");
  auto s3 = stored("r", {ok});
  EXPECT_EQ(make_run(s3).verdict.word, "PASS");
  auto s4 = stored("r", {{"x", axes("host", "none")}});
  EXPECT_EQ(make_run(s4).verdict.word, "MEASURED");
  s3.run["status"] = "interrupted";
  EXPECT_EQ(make_run(s3).verdict.word, "INCOMPLETE");
}

TEST(Model, SeedTableHasTheStudysRowsAndColumns) {
  // host_kernel x guest_kernel x workload for kvm, plus a bare-metal host row.
  std::vector<CellDoc> cells;
  long long max = 10000;
  for (std::string hk : {"rt", "nrt"})
    for (std::string gk : {"rt", "nrt"})
      for (std::string w : {"stress", "none"}) {
        auto a = axes("kvm", w);
        a.emplace_back("host_kernel", hk);
        a.emplace_back("guest_kernel", gk);
        cells.push_back({"kvm-" + w + "-" + hk + "-" + gk, a, "measured", max += 1000});
      }
  cells.push_back({"host-none", axes("host", "none"), "measured", 29000});
  CellDoc rt_host{"host-rt", axes("host", "none")};
  rt_host.host_facts["preempt_rt"] = true;  // no host_kernel axis: the facts say RT
  rt_host.max_ns = 31000;
  cells.push_back(rt_host);
  // The host backend in Xen's control domain: the seed's Dom0 row.
  CellDoc dom0{"host-dom0", axes("host", "none")};
  dom0.host_facts["preempt_rt"] = false;
  dom0.host_facts["xen_role"] = "dom0";
  dom0.max_ns = 630000;
  cells.push_back(dom0);
  auto s = stored("r", cells);
  RunView run = make_run(s);
  auto tables = seed_tables(run);
  ASSERT_EQ(tables.size(), 1u);
  const auto& t = tables[0];
  EXPECT_EQ(t.fixed, (std::vector<std::pair<std::string, std::string>>{{"probe", "cyclictest"}, {"period", "1ms"}}));
  EXPECT_EQ(t.rows, (std::vector<std::string>{"NRT/NRT", "NRT/RT", "RT/NRT", "RT/RT", "Host (NRT)", "Host (RT)", "Dom0 (NRT)"}));
  EXPECT_EQ(*t.entries.at({6, 2}).worst_ns, 630000);
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0].backend, "kvm");
  EXPECT_EQ(t.columns[0].label(), "no stress");
  EXPECT_EQ(t.columns[1].label(), "stress");
  EXPECT_EQ(t.columns[2].backend, "host");
  // RT/RT x kvm x stress is the cell kvm-stress-rt-rt (the first one added: max 11000).
  const auto& e = t.entries.at({3, 1});
  ASSERT_EQ(e.cells.size(), 1u);
  EXPECT_EQ(run.cells[static_cast<std::size_t>(e.cells[0])].id, "kvm-stress-rt-rt");
  EXPECT_EQ(*e.worst_ns, 11000);
  EXPECT_EQ(*t.entries.at({5, 2}).worst_ns, 31000);
  EXPECT_EQ(t.entries.count({0, 2}), 0u);  // no host cell in a guest row
  EXPECT_EQ(worst_case_text(11000), "11.0 µs");
  EXPECT_EQ(worst_case_text(851400), "851 µs");
}

// Two runs of two machines (a host run on one, a kvm run on the other, as
// one CI job per host makes them): one seed table with a column group per
// machine, the cell both ran shown once per run and marked, the worst verdict.
TEST(Merge, TwoMachinesMakeOneSeedTableAndACellOfBothRunsIsShownTwice) {
  auto on = [](CellDoc c, const std::string& machine) {
    c.host_facts["hostname"] = machine;
    return c;
  };
  CellDoc failing = on({"host-none", axes("host", "none"), "measured", 40000}, "core-duo");
  failing.gates = json::array({json{{"gate", "g"}, {"stat", "max"}, {"verdict", "fail"}, {"bound_ns", 10}, {"value_ns", 20}, {"excess_ns", 10}}});
  auto host_run = stored("hostrun", {failing, on({"host-stress", axes("host", "stress"), "measured", 45000}, "core-duo")});
  std::vector<CellDoc> kvm_cells{on({"host-none", axes("host", "none"), "measured", 20000}, "core-i7")};
  for (std::string gk : {"nrt", "rt"}) {
    auto a = axes("kvm", "none");
    a.emplace_back("guest_kernel", gk);
    kvm_cells.push_back(on({"kvm-none-" + gk, a, "measured", gk == "rt" ? 30000 : 35000}, "core-i7"));
  }
  auto kvm_run = stored("kvmrun", kvm_cells);
  std::vector<RunView> runs{make_run(host_run), make_run(kvm_run)};
  EXPECT_EQ(runs[0].verdict.word, "FAIL");
  EXPECT_EQ(runs[1].verdict.word, "MEASURED");
  RunView merged = merge_runs(runs);
  ASSERT_TRUE(merged.merged());
  EXPECT_EQ(merged.verdict.word, "FAIL");  // the worst of the runs
  ASSERT_EQ(merged.cells.size(), 5u);
  int twins = 0;
  for (const auto& c : merged.cells) {
    EXPECT_EQ(c.index, &c - merged.cells.data());
    EXPECT_EQ(c.axis("machine"), c.run_id == "hostrun" ? "core-duo" : "core-i7") << c.id;
    if (c.id != "host-none") {
      EXPECT_TRUE(c.also_in.empty()) << c.id;
      continue;
    }
    ++twins;
    EXPECT_EQ(c.also_in, (std::vector<std::string>{c.run_id == "hostrun" ? "kvmrun" : "hostrun"}));
  }
  EXPECT_EQ(twins, 2);

  auto tables = seed_tables(merged);
  ASSERT_EQ(tables.size(), 1u);  // the machine is a column group, not another table
  const auto& t = tables[0];
  EXPECT_EQ(t.rows, (std::vector<std::string>{"NRT/NRT", "NRT/RT", "Host (NRT)"}));
  ASSERT_EQ(t.columns.size(), 4u);
  std::vector<std::string> columns;
  for (const auto& c : t.columns) columns.push_back(c.machine + "/" + c.backend + "/" + c.workload);
  EXPECT_EQ(columns, (std::vector<std::string>{"core-duo/host/none", "core-duo/host/stress", "core-i7/host/none", "core-i7/kvm/none"}));
  EXPECT_EQ(*t.entries.at({2, 0}).worst_ns, 40000);  // host-none on each machine: both shown
  EXPECT_EQ(*t.entries.at({2, 2}).worst_ns, 20000);
  EXPECT_EQ(*t.entries.at({1, 3}).worst_ns, 30000);

  std::string html = render_html(ReportInput{&merged, nullptr, nullptr});
  EXPECT_NE(html.find("<th class=\"machine\" colspan=\"2\">core-duo</th><th class=\"machine\" colspan=\"2\">core-i7</th>"),
            std::string::npos);
  // Each cell names its run and the other runs holding it (the page marks it with them).
  const json page = page_data(ReportInput{&merged, nullptr, nullptr}).index;
  std::vector<std::string> marks;
  for (const auto& c : page["cells"])
    if (c["id"] == "host-none") marks.push_back(c["run"].get<std::string>() + " also " + c.value("also", json::array()).dump());
  EXPECT_EQ(marks, (std::vector<std::string>{"hostrun also [\"kvmrun\"]", "kvmrun also [\"hostrun\"]"}));
  json j = render_json(ReportInput{&merged, nullptr, nullptr});
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["run_id"], "kvmrun");
  EXPECT_EQ(j["verdict"]["word"], "FAIL");
  EXPECT_EQ(j["seed_tables"][0]["columns"][0]["machine"], "core-duo");
  EXPECT_EQ(j["cells"][2]["also_in"], json::array({"hostrun"}));
  std::string md = render_markdown(ReportInput{&merged, nullptr, nullptr});
  EXPECT_NE(md.find("| host-none | kvmrun (also in hostrun) |"), std::string::npos) << md;
}

// Two runs of one machine (a reboot, a rerun): the same cell lands in one
// seed entry, which shows each run's value beside its run id.
TEST(Merge, OneMachineTwoRunsShowBothValuesOfTheSameCell) {
  auto first = stored("a1", {{"host-none", axes("host", "none"), "measured", 12000}});
  auto second = stored("b2", {{"host-none", axes("host", "none"), "measured", 97000}});
  std::vector<RunView> runs{make_run(first), make_run(second)};
  RunView merged = merge_runs(runs);
  EXPECT_EQ(merged.cells[0].axis("machine"), "");  // one machine: no machine axis
  auto tables = seed_tables(merged);
  ASSERT_EQ(tables.size(), 1u);
  ASSERT_EQ(tables[0].columns.size(), 1u);
  const SeedEntry& e = tables[0].entries.at({0, 0});
  EXPECT_EQ(e.cells.size(), 2u);
  auto parts = entry_by_run(merged, e);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].first, "a1");
  EXPECT_EQ(*parts[0].second.worst_ns, 12000);
  EXPECT_EQ(*parts[1].second.worst_ns, 97000);
  std::string md = render_markdown(ReportInput{&merged, nullptr, nullptr});
  EXPECT_NE(md.find("| Host (NRT) | 12.0 µs (run a1) · 97.0 µs (run b2) |"), std::string::npos) << md;
  json j = render_json(ReportInput{&merged, nullptr, nullptr});
  EXPECT_EQ(j["seed_tables"][0]["entries"][0]["by_run"][1]["max_ns"], 97000);
  // One run is left as it is.
  std::vector<RunView> one{make_run(first)};
  EXPECT_FALSE(merge_runs(one).merged());
  // Two jobs of one plan started in the same second share a run id: still told apart.
  auto again = stored("a1", {{"host-none", axes("host", "none"), "measured", 15000}});
  std::vector<RunView> same_id{make_run(first), make_run(again)};
  RunView both = merge_runs(same_id);
  EXPECT_EQ(both.cells[1].run_id, "a1#2");
  EXPECT_EQ(both.cells[0].also_in, (std::vector<std::string>{"a1#2"}));
  EXPECT_EQ(both.run_id, "a1 + a1#2");
}

TEST(Model, GuestKernelComesFromTheBackendsFactsWithoutAnAxis) {
  CellDoc c{"kvm", axes("kvm", "none")};
  c.facts = json{{"backend", {{"guest", {{"system", {{"preempt_rt", true}}}}}}}};
  auto s = stored("r", {c});
  RunView run = make_run(s);
  EXPECT_EQ(guest_kernel_label(run.cells[0]), "RT");
  EXPECT_EQ(host_kernel_label(run.cells[0]), "NRT");
}

TEST(Model, TheSeedTableSaysWhenAKvmGuestWasEmulated) {
  CellDoc c{"kvm", axes("kvm", "none")};
  c.facts = json{{"backend", {{"accelerator", "tcg"}}}};
  auto s = stored("r", {c, {"host", axes("host", "none")}});
  RunView run = make_run(s);
  EXPECT_EQ(accelerators(run, "kvm"), "tcg");
  EXPECT_EQ(accelerators(run, "host"), "");
  std::string md = render_markdown(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(md.find("| kernels | kvm (tcg), no stress | host, no stress |"), std::string::npos) << md;
}

namespace {
// 2 million samples at 1ms with an exponential tail (scale 3us above 10us):
// a tail the peaks-over-threshold model fits.
Histogram exponential_tail(double scale_us = 3, double samples = 2e6) {
  Histogram h;
  std::uint64_t n = 0;
  long long top = 0;
  for (std::uint64_t k = 10; k < 400; ++k) {
    auto c = static_cast<std::uint64_t>(samples * (1 - std::exp(-1.0 / scale_us)) *
                                        std::exp(-(static_cast<double>(k) - 10) / scale_us));
    if (c == 0) break;
    h.add_bucket(k, c);
    n += c;
    top = static_cast<long long>(k) * 1000 + 500;
  }
  h.set_exact(nanoseconds(10000), nanoseconds(top), nanoseconds(static_cast<long long>(n) * 13000));
  return h;
}
}  // namespace

TEST(Tails, EveryMeasuredCellHasItsTailInTheReportAndTheRunLengthOfItsMaxGates) {
  CellDoc quiet{"a", axes("host", "none")};
  quiet.gates = json::array({json{{"gate", "worst"}, {"stat", "max"}, {"bound_ns", 60000}, {"verdict", "pass"}}});
  auto s = stored("r", {quiet, {"b", axes("host", "x"), "infra-error"}});
  // Cell a measured 2 million samples over 2000 s.
  s.cells[0]["merged"] = series(exponential_tail());
  s.cells[0]["timings"] = json{{"phases", {{"measure_s", 2000.0}}}};
  RunView run = make_run(s);
  json j = render_json(ReportInput{&run, nullptr, nullptr});
  const json& tail = j["cells"][0]["tail"];
  ASSERT_TRUE(tail.is_object()) << j["cells"][0].dump();
  EXPECT_EQ(tail["method"], "gpd") << tail.dump();
  EXPECT_GT(tail["exceedances"].get<int>(), 0);
  EXPECT_TRUE(tail["gof_p"].is_number());
  EXPECT_DOUBLE_EQ(tail["duration_s"].get<double>(), 2000.0);
  ASSERT_EQ(tail["return_levels"].size(), 2u);
  EXPECT_EQ(tail["return_levels"][0]["horizon"], "1h");
  EXPECT_EQ(tail["return_levels"][1]["horizon"], "24h");
  // More operation, a worse worst case; each inside its interval.
  EXPECT_LT(tail["return_levels"][0]["value_ns"].get<double>(), tail["return_levels"][1]["value_ns"].get<double>());
  for (const auto& r : tail["return_levels"]) {
    EXPECT_LE(r["low_ns"].get<double>(), r["value_ns"].get<double>());
    EXPECT_GE(r["high_ns"].get<double>(), r["value_ns"].get<double>());
  }
  ASSERT_EQ(tail["bound_exceedance"].size(), 1u);
  EXPECT_EQ(tail["bound_exceedance"][0]["bound_ns"], 60000);
  ASSERT_EQ(tail["run_length"].size(), 1u);
  EXPECT_DOUBLE_EQ(tail["run_length"][0]["confidence"].get<double>(), 0.99);
  EXPECT_TRUE(j["cells"][1]["tail"].is_null());  // not measured
  std::string md = render_markdown(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(md.find("### Tails"), std::string::npos) << md;
  EXPECT_NE(md.find("- a: to claim max &lt;= 60.0us at 99% you need about "), std::string::npos) << md;
  std::string html = render_html(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(html.find("<section id=\"tails\">"), std::string::npos);
}

TEST(Tails, EachCpuHasTheTailOfItsOwnHistogram) {
  // CPU 0: an exponential tail of scale 3us; CPU 1: scale 8us, half the
  // samples; CPU 2: 20 samples, no tail to fit. Merged: all three.
  CellDoc doc{"a", axes("host", "none")};
  doc.gates = json::array({json{{"gate", "worst"}, {"stat", "max"}, {"bound_ns", 60000}, {"verdict", "pass"}}});
  auto s = stored("r", {doc});
  const Histogram h0 = exponential_tail(3, 2e6), h1 = exponential_tail(8, 1e6), h2 = spread(20, 10, 12, 15000);
  Histogram merged = h0;
  merged.merge(h1);
  merged.merge(h2);
  s.cells[0]["merged"] = series(merged);
  s.cells[0]["per_cpu"] = json{{"0", series(h0)}, {"1", series(h1)}, {"2", series(h2)}};
  s.cells[0]["timings"] = json{{"phases", {{"measure_s", 2000.0}}}};
  RunView run = make_run(s);
  const json j = render_json(ReportInput{&run, nullptr, nullptr});
  const json& tail = j["cells"][0]["tail"];
  ASSERT_TRUE(tail["per_cpu"].is_object()) << tail.dump();
  ASSERT_EQ(tail["per_cpu"].size(), 3u);
  // Each CPU's is exactly the model of that CPU's histogram over the cell's measuring time.
  stats::TailOptions options;
  options.bounds_ns = {60000};
  const Histogram* own[] = {&h0, &h1, &h2};
  for (int cpu = 0; cpu < 3; ++cpu) {
    json expected = stats::to_json(stats::fit_tail(*own[cpu], 2000.0, options));
    expected["run_length"] = json::array();
    EXPECT_EQ(tail["per_cpu"][std::to_string(cpu)], expected) << cpu;
  }
  const json &t0 = tail["per_cpu"]["0"], &t1 = tail["per_cpu"]["1"];
  ASSERT_EQ(t0["method"], "gpd") << t0.dump();
  ASSERT_EQ(t1["method"], "gpd") << t1.dump();
  // The known tails: exponential (shape ~0) with each CPU's scale, not the mixture's.
  EXPECT_NEAR(t0["sigma_ns"].get<double>(), 3000, 450);
  EXPECT_NEAR(t1["sigma_ns"].get<double>(), 8000, 1200);
  EXPECT_NEAR(t0["xi"].get<double>(), 0, 0.1);
  EXPECT_NEAR(t1["xi"].get<double>(), 0, 0.1);
  EXPECT_EQ(t0["samples"].get<std::uint64_t>(), h0.samples());
  EXPECT_LT(t0["return_levels"][0]["value_ns"].get<double>(), t1["return_levels"][0]["value_ns"].get<double>());
  EXPECT_EQ(tail["per_cpu"]["2"]["method"], "empirical");
  EXPECT_EQ(tail["per_cpu"]["2"]["return_levels"].size(), 0u);
  EXPECT_EQ(tail["samples"].get<std::uint64_t>(), merged.samples());
  // The tables: a row per CPU below the cell's.
  const json tails = page_data(ReportInput{&run, nullptr, nullptr}).shared["tails"];
  ASSERT_EQ(tails.size(), 1u);
  EXPECT_EQ(tails[0][0], 0);  // the cell
  std::vector<std::string> cpus;
  for (const auto& row : tails[0][8]) cpus.push_back(row[0]);
  EXPECT_EQ(cpus, (std::vector<std::string>{"0", "1", "2"}));
  const std::string md = render_markdown(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(md.find("| a CPU 1 | gpd |"), std::string::npos) << md;
  // Without the tail model (the benchmark's comparison): no tails at all.
  ReportInput off{&run, nullptr, nullptr};
  off.tails = false;
  EXPECT_TRUE(render_json(off)["cells"][0]["tail"].is_null());
  EXPECT_EQ(render_html(off).find("<section id=\"tails\">"), std::string::npos);
  EXPECT_TRUE(page_data(off).shared["tails"].empty());
}

TEST(Tails, AReturnLevelGateUsesTheModelAndFallsBackToTheMeasuredMax) {
  GateSpec gate;
  gate.name = "rl1h";
  gate.stat = "rl1h";
  gate.horizon_s = 3600;
  std::string basis;
  const Histogram tail = exponential_tail();
  // 2 million samples at 1ms: 33 minutes; an hour's worst case lies beyond the measured max.
  CellSpec cell;
  cell.period = std::chrono::milliseconds(1);
  const double seconds = nominal_measured_seconds(cell, tail.samples());
  EXPECT_NEAR(seconds, 2000.0, 1.0);
  auto rl = return_level_statistic(gate, tail, seconds, &basis);
  EXPECT_EQ(basis, "gpd");
  EXPECT_GT(rl, tail.max());
  gate.horizon_s = 86400;
  EXPECT_GT(return_level_statistic(gate, tail, seconds), rl);
  // The same samples from two CPUs at once are half the time: an hour holds
  // twice the wake-ups, so its worst case is larger.
  cell.cpus = {0, 1};
  EXPECT_NEAR(nominal_measured_seconds(cell, tail.samples()), 1000.0, 1.0);
  gate.horizon_s = 3600;
  EXPECT_GT(return_level_statistic(gate, tail, nominal_measured_seconds(cell, tail.samples())), rl);
  // 20 samples: no tail to fit, the measured max, and it says so.
  Histogram thin = spread(20, 10, 12, 15000);
  EXPECT_EQ(return_level_statistic(gate, thin, 0.02, &basis), nanoseconds(15000));
  EXPECT_EQ(basis.rfind("empirical: ", 0), 0u) << basis;
}

TEST(Model, PeriodSweepHasOneColumnPerPeriodShortestFirst) {
  std::vector<CellDoc> cells = {{"a", axes("kvm", "none", "1ms"), "measured", 130000},
                                {"b", axes("kvm", "none", "50us"), "measured", 661000},
                                {"c", axes("kvm", "none", "500us"), "measured", 112000},
                                {"d", axes("kvm", "stress", "50us"), "measured", 900000}};
  auto s = stored("r", cells);
  RunView run = make_run(s);
  auto sweep = period_sweep(run);
  EXPECT_EQ(sweep.periods, (std::vector<std::string>{"50us", "500us", "1ms"}));
  ASSERT_EQ(sweep.rows.size(), 2u);
  EXPECT_EQ(*sweep.rows[0].by_period.at("50us").worst_ns, 661000);
  EXPECT_EQ(sweep.rows[1].by_period.count("1ms"), 0u);
  auto one = stored("r", {{"a", axes("kvm", "none")}});
  RunView single = make_run(one);
  EXPECT_TRUE(period_sweep(single).periods.empty());
}

TEST(Escaping, HtmlAndMarkdownNeutraliseMarkup) {
  EXPECT_EQ(html_escape("<img src=x onerror='a'>&\""), "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;");
  EXPECT_EQ(markdown_escape("a|b\n<b>*c*_[x](y)`"), "a\\|b &lt;b&gt;\\*c\\*\\_\\[x\\](y)\\`");
  EXPECT_EQ(line_safe("a\nb\x1b[2J"), "a?b?[2J");
}

TEST(Escaping, HostileValuesInAResultNeverBecomeMarkup) {
  const std::string evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
  CellDoc c{"cell-" + evil, {{"backend", "host"}, {"workload", "none"}, {"probe", evil}, {"period", "1ms"}}, "infra-error"};
  c.error = "boot failed: " + evil;
  c.gates = json::array({json{{"gate", evil}, {"stat", "max"}, {"verdict", "error"}, {"message", evil}}});
  CellDoc ok{"ok", {{"backend", "host"}, {"workload", "none"}, {"probe", "p"}, {"period", "1ms"}, {"x" + evil, evil}}};
  ok.host_facts["kernel_release"] = evil;
  auto s = stored("r" + evil, {c, ok}, "plan " + evil);
  s.run["hosts"]["local"]["cpu_model"] = evil;
  s.run["command_line"] = json::array({"vmlat", evil});
  RunView run = make_run(s);
  ReportInput in{&run, nullptr, nullptr};
  std::string html = render_html(in);
  // The page's own scripts only (the index, the shared details, one chunk of cells, the code).
  std::size_t scripts = 0;
  for (auto at = html.find("<script"); at != std::string::npos; at = html.find("<script", at + 1)) ++scripts;
  EXPECT_EQ(scripts, 4u);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);  // the static sections escape
  EXPECT_NE(html.find("\\u003cscript>alert(1)\\u003c/script>"), std::string::npos);  // the index's JSON cannot end its element
  // The data holds the values as they are: the page sets them as text.
  const PageData data = page_data(in);
  EXPECT_EQ(data.index["cells"][0]["id"], "cell-" + evil);
  EXPECT_EQ(data.cells[0]["err"], "boot failed: " + evil);
  std::string markdown = render_markdown(in);
  EXPECT_EQ(markdown.find("<script"), std::string::npos);
  EXPECT_EQ(markdown.find("<img"), std::string::npos);
  // JSON output is data: the value is there as it was, JSON-encoded.
  EXPECT_EQ(render_json(in)["cells"][0]["error"], "boot failed: " + evil);
}

TEST(Report, EveryMeasuredCellHasBothPlotsAndItsExactMax) {
  std::vector<CellDoc> cells = {{"a", axes("host", "none"), "measured", 123456}, {"b", axes("host", "stress"), "measured", 98765},
                                {"c", axes("host", "x"), "infra-error"}};
  auto s = stored("r", cells);
  RunView run = make_run(s);
  const PageData data = page_data(ReportInput{&run, nullptr, nullptr});
  for (std::size_t i : {0u, 1u}) {  // a, b: histograms to plot; the stats row "all" with the exact max
    const json& series = data.cells[i]["s"][0];
    ASSERT_TRUE(series.contains("h")) << i;
    const json& merged = s.cells[i]["merged"];
    if (series["h"] == "") {  // the merged histogram is the sum of the CPUs', which are there
      ASSERT_EQ(series["hc"].size(), s.cells[i]["per_cpu"].size()) << i;
      std::size_t k = 0;
      for (const auto& cpu : s.cells[i]["per_cpu"]) EXPECT_EQ(series["hc"][k++], encode_histogram(*decode_histogram(cpu["histogram"])));
    } else {
      EXPECT_EQ(series["h"], encode_histogram(*decode_histogram(merged["histogram"]))) << i;
    }
    EXPECT_EQ(series["rows"][0][0], "all");
    EXPECT_EQ(series["rows"][0][9], merged["stats"]["max_ns"]);
  }
  EXPECT_EQ(data.index["cells"][0]["max"], 123456);
  EXPECT_EQ(data.index["cells"][1]["max"], 98765);
  EXPECT_FALSE(data.cells[2]["s"][0].contains("h"));  // c: nothing measured, nothing to plot
  std::string html = render_html(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(html.find("<table class=\"seed\">"), std::string::npos);
  std::string md = render_markdown(ReportInput{&run, nullptr, nullptr});
  EXPECT_NE(md.find("| Host (NRT) | 123 µs | 98.8 µs | infra-error |"), std::string::npos) << md;
}

TEST(Report, WithABaselineTheComparisonAndTheOverlayAreShown) {
  auto base_s = stored("base-run", {{"a", axes("host", "none"), "measured", 50000}});
  auto new_s = stored("new-run", {{"a", axes("host", "none"), "measured", 90000}});
  RunView base = make_run(base_s), now = make_run(new_s);
  Comparison c = compare_runs(base, now, CompareOptions{});
  std::string html = render_html(ReportInput{&now, &base, &c});
  EXPECT_NE(html.find("<section id=\"comparison\">"), std::string::npos);
  EXPECT_NE(html.find("REGRESSION"), std::string::npos);
  const PageData data = page_data(ReportInput{&now, &base, &c});
  EXPECT_EQ(data.index["baseline"], "base-run");
  EXPECT_EQ(data.index["cells"][0]["reg"], 1);  // listed with the cells that need attention
  EXPECT_EQ(data.cells[0]["s"][0]["hb"], encode_histogram(*decode_histogram(base_s.cells[0]["merged"]["histogram"])));
  EXPECT_EQ(render_json(ReportInput{&now, &base, &c})["comparison"]["exit_code"], 1);
}

// docs/report.md, "The page's data": min, max, overflows, then per
// non-empty bucket count*2 (+1 and the gap when buckets were skipped) as
// base64url varints of 5 bits, low bits first.
TEST(PageData, HistogramsAreEncodedAsTheDocumentSays) {
  HistogramData h;
  h.buckets = {{3, 1}, {4, 2}, {10, 40}};
  h.min_ns = 3100;
  h.max_ns = 10900;
  EXPECT_EQ(encode_histogram(h), "3100,10900,0,DDExCF");  // 3+gap 3, 4, 81 = 17+2*32 and gap 5
  h.overflows = 2;
  h.buckets = {{0, 1}, {1, 1 << 20}};
  EXPECT_EQ(encode_histogram(h), "3100,10900,2,CggggC");  // 2; 2^21 in 5-bit digits: 0,0,0,0,2
}

TEST(PageData, TheMergedHistogramIsLeftOutOnlyWhenItIsTheSumOfTheCpus) {
  CellDoc doc{"a", axes("host", "none"), "measured", 40000};
  auto s = stored("r", {doc});
  Histogram h0 = spread(100, 3, 9, 12000), h1 = spread(50, 5, 20, 40000);
  Histogram merged = h0;
  merged.merge(h1);
  s.cells[0]["merged"] = series(merged);
  s.cells[0]["per_cpu"] = json{{"0", series(h0)}, {"1", series(h1)}};
  RunView run = make_run(s);
  json one = page_data(ReportInput{&run, nullptr, nullptr}).cells[0]["s"][0];
  EXPECT_EQ(one["h"], "");
  EXPECT_EQ(one["cpus"], json::array({"0", "1"}));
  EXPECT_EQ(one["hc"][1], encode_histogram(*decode_histogram(series(h1)["histogram"])));
  // A merged histogram that is not their sum (a hand-edited result) is carried as it is.
  s.cells[0]["merged"] = series(h0);
  RunView other = make_run(s);
  EXPECT_EQ(page_data(ReportInput{&other, nullptr, nullptr}).cells[0]["s"][0]["h"],
            encode_histogram(*decode_histogram(series(h0)["histogram"])));
}

TEST(PageData, TheScriptsDataCannotEndItsElement) {
  EXPECT_EQ(script_json(json{{"a", "</script><!--<script>"}}), "{\"a\":\"\\u003c/script>\\u003c!--\\u003cscript>\"}");
}

TEST(Plots, DecodeRefusesWhatIsNotAHistogram) {
  EXPECT_FALSE(decode_histogram(json::object()));
  EXPECT_FALSE(decode_histogram(json{{"buckets", {{5, 1}, {3, 1}}}}));  // not ascending
  EXPECT_FALSE(decode_histogram(json{{"buckets", {{5, -1}}}}));
  EXPECT_FALSE(decode_histogram(json{{"buckets", json::array()}}));  // no samples
  auto h = decode_histogram(spread(100, 3, 9, 12000).to_json());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->samples(), 101u);
}

TEST(Plots, TheHistogramHasABarPerBinColumn) {
  Histogram h;
  for (std::uint64_t k = 2; k < 5000; k += 7) h.add_bucket(k, 1 + k % 13);
  h.add_overflows(3);
  h.set_exact(microseconds(2), microseconds(25000), microseconds(1));
  auto d = *decode_histogram(h.to_json());
  std::string hist = histogram_svg(d, "class=\"plot histogram\"");
  EXPECT_NE(hist.find("3 overflows beyond the histogram range, max 25ms"), std::string::npos);
  auto bars = std::count(hist.begin(), hist.end(), 'Z');
  // The bins cover 0-5ms of a 0-25ms axis (~100 of its ~490 pixel columns),
  // seven 1us bins to a column: one bar per column.
  EXPECT_GT(bars, 80);
  EXPECT_LE(bars, 110);
}

TEST_F(ScratchDir, LoadRunDirFollowsLatestAndNeverReadsOutsideTheRun) {
  write_run(dir_ / "results" / "run1", "run1", {{"a", axes("host", "none")}});
  fs::create_directory_symlink("run1", dir_ / "results" / "latest");
  auto s = load_run_dir((dir_ / "results").string());
  EXPECT_EQ(s.run["run_id"], "run1");
  EXPECT_EQ(s.cells.size(), 1u);
  // A result.json outside the run, and a run.json that points at it.
  write_run(dir_ / "elsewhere", "other", {{"a", axes("host", "none")}});
  json run = s.run;
  run["cells"][0]["id"] = "../../elsewhere/cells/a";
  run["cells"][0]["dir"] = "../../elsewhere/cells/a";
  std::ofstream(dir_ / "results" / "run1" / "run.json") << run.dump();
  auto outside = load_run_dir((dir_ / "results" / "run1").string());
  EXPECT_TRUE(outside.cells.empty());
  RunView view = make_run(outside);
  ASSERT_EQ(view.cells.size(), 1u);
  EXPECT_EQ(view.cells[0].result, nullptr);  // listed, its result not read
  EXPECT_THROW(load_run_dir((dir_ / "nothing").string()), std::runtime_error);
}

TEST_F(ScratchDir, CompareReadsSummariesAndReachesTheVerdictsOfWholeRuns) {
  // Five earlier runs and a new one whose cell a is twice as slow at the top.
  const fs::path results = dir_ / "results", now_dir = dir_ / "new";
  for (int k = 0; k < 5; ++k)
    write_run(results / ("r" + std::to_string(k)), "r" + std::to_string(k),
              {{"a", axes("host", "none"), "measured", 50000 + 1000 * k}, {"b", axes("host", "stress"), "measured", 80000 - 2000 * k}});
  write_run(now_dir, "new", {{"a", axes("host", "none"), "measured", 120000}, {"b", axes("host", "stress"), "measured", 79000}});
  // Cell a's statistics lack p99.9 in r2 and in the new run (an older
  // writer): compare computes it from the histogram, which must be read.
  for (const fs::path& f : {results / "r2" / "cells" / "a" / "result.json", now_dir / "cells" / "a" / "result.json"}) {
    json r = json::parse(std::ifstream(f));
    r["merged"]["stats"].erase("p99_9_ns");
    std::ofstream(f) << r.dump(1);
  }
  // A broken histogram in r4: the run is no part of the history, read whole or not.
  {
    const fs::path f = results / "r4" / "cells" / "b" / "result.json";
    std::ifstream in(f);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find("\"buckets\": [");
    ASSERT_NE(at, std::string::npos);
    text.insert(at + 12, "[");
    std::ofstream(f) << text;
  }
  const CellContent summary = content_for(CompareOptions{}.stats);
  const auto whole_history = load_baseline_runs(results.string(), "p", "", now_dir.string());
  const auto summary_history = load_baseline_runs(results.string(), "p", "", now_dir.string(), summary);
  const StoredRun whole_now = load_run_dir(now_dir.string()), summary_now = load_run_dir(now_dir.string(), summary);
  EXPECT_EQ(whole_history.size(), 4u);
  EXPECT_EQ(summary_history.size(), 4u);
  auto compared = [](const std::vector<StoredRun>& h, const StoredRun& n) {
    std::deque<RunView> runs;
    std::vector<const RunView*> history;
    for (const auto& r : h) history.push_back(&runs.emplace_back(make_run(r)));
    const RunView now = make_run(n);
    return compare_json(compare_runs(history, now, CompareOptions{})).dump(1);
  };
  const std::string whole = compared(whole_history, whole_now);
  EXPECT_EQ(compared(summary_history, summary_now), whole);
  const json j = json::parse(whole);
  EXPECT_EQ(j["history"]["count"], 4);
  EXPECT_EQ(j["summary"]["regressed"], 1);
  EXPECT_EQ(j["cells"][0]["cell"], "a");
  EXPECT_EQ(j["cells"][0]["stats"][2]["stat"], "p99.9");
  // What the summary left out: per-CPU series always, a histogram where the
  // statistics hold every one compare reads.
  const json* a = find_cell_result(summary_now, "a");
  const json* b = find_cell_result(summary_now, "b");
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->at("merged").contains("histogram"));
  EXPECT_FALSE(b->at("merged").contains("histogram"));
  EXPECT_TRUE(find_cell_result(whole_now, "b")->at("merged").contains("histogram"));
  EXPECT_FALSE(b->contains("per_cpu"));
  EXPECT_EQ(b->at("host_facts"), find_cell_result(whole_now, "b")->at("host_facts"));
}

namespace {
// A max regression gate against `spec`.
GateSpec max_regression_gate(const std::string& name, const RegressionSpec& spec) {
  GateSpec gate;
  gate.name = name;
  gate.stat = "max";
  gate.regression = std::make_shared<const RegressionSpec>(spec);
  return gate;
}
}  // namespace

TEST_F(ScratchDir, RegressionGateVerdicts) {
  write_run(dir_ / "base", "base-run", {{"a", axes("host", "none"), "measured", 100000}, {"b", axes("host", "x"), "infra-error"}});
  RegressionSpec spec{baseline_run((dir_ / "base").string()), *parse_tolerance("10%")};
  GateSpec gate = max_regression_gate("max-regression", spec);
  CellSpec cell;
  cell.id = "a";
  Histogram within = spread(100, 10, 20, 109000), beyond = spread(100, 10, 20, 111000);

  auto pass = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &within);
  EXPECT_EQ(pass.verdict, Verdict::pass) << pass.message;
  EXPECT_EQ(pass.bound, nanoseconds(110000));
  EXPECT_EQ(pass.extra["baseline_ns"], 100000);
  EXPECT_EQ(pass.extra["baseline_run"], "base-run");

  auto fail = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &beyond);
  EXPECT_EQ(fail.verdict, Verdict::fail);
  EXPECT_EQ(fail.message, "max 111us vs baseline 100us (+11.0us, +11.0%) exceeds tolerance 10% (+10.0us) by 1.0us");
  EXPECT_EQ(fail.extra["history_verdict"], "regressed");
  EXPECT_TRUE(fail.extra["confidence"].is_null());  // one run: the tolerance rule, no confidence

  cell.id = "new-cell";
  auto absent = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &within);
  EXPECT_EQ(absent.verdict, Verdict::skipped);
  EXPECT_NE(absent.message.find("no baseline: cell new-cell is not in baseline run base-run"), std::string::npos);
  cell.id = "b";
  auto unmeasured = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &within);
  EXPECT_EQ(unmeasured.verdict, Verdict::skipped);
  EXPECT_NE(unmeasured.message.find("was not measured in baseline run base-run (infra-error)"), std::string::npos);
  auto not_measured_now = evaluate_regression_gate(gate, cell, CellStatus::infra_error, "boot", nullptr);
  EXPECT_EQ(not_measured_now.verdict, Verdict::error);

  GateSpec missing = gate;
  missing.regression = std::make_shared<const RegressionSpec>(RegressionSpec{baseline_run((dir_ / "gone").string()), spec.tolerance});
  auto error = evaluate_regression_gate(missing, cell, CellStatus::measured, "", &within);
  EXPECT_EQ(error.verdict, Verdict::error);
  EXPECT_NE(error.message.find("cannot be read"), std::string::npos) << error.message;
}

TEST_F(ScratchDir, RegressionGateJudgesAgainstAHistoryAtItsConfidence) {
  // Eight complete runs of plan "p" (maxima 95..120us), one of another plan
  // and one still running (both with a huge max: they must not count).
  const long long maxima_us[] = {100, 112, 95, 120, 104, 116, 98, 108};
  for (int i = 0; i < 8; ++i)
    write_run(dir_ / "hist" / ("r" + std::to_string(i)), "r" + std::to_string(i),
              {{"a", axes("host", "none"), "measured", maxima_us[i] * 1000}});
  write_run(dir_ / "hist" / "other", "other", {{"a", axes("host", "none"), "measured", 90000000}});
  json other = json::parse(std::ifstream(dir_ / "hist" / "other" / "run.json"));
  other["plan"]["name"] = "another-plan";
  std::ofstream(dir_ / "hist" / "other" / "run.json") << other.dump();
  write_run(dir_ / "hist" / "now", "now", {{"a", axes("host", "none"), "measured", 90000000}});
  json running = json::parse(std::ifstream(dir_ / "hist" / "now" / "run.json"));
  running["status"] = "running";
  std::ofstream(dir_ / "hist" / "now" / "run.json") << running.dump();

  RegressionSpec spec{baseline_run((dir_ / "hist").string()), *parse_tolerance("10%")};
  spec.baseline->preload("p");
  ASSERT_EQ(spec.baseline->runs().size(), 8u) << spec.baseline->error();
  GateSpec gate = max_regression_gate("max-history", spec);
  CellSpec cell;
  cell.id = "a";

  Histogram usual = spread(100, 10, 20, 115000), far = spread(100, 10, 20, 5000000);
  auto pass = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &usual);
  EXPECT_EQ(pass.verdict, Verdict::pass) << pass.message;
  EXPECT_EQ(pass.extra["baseline_runs"], 8);
  EXPECT_EQ(pass.extra["baseline_ns"], 106000);  // the median
  EXPECT_EQ(pass.extra["baseline_run"], "r7");   // the newest (ties on started: by directory)
  EXPECT_DOUBLE_EQ(pass.extra["confidence"].get<double>(), 0.99);
  EXPECT_GT(pass.bound, nanoseconds(106000 + 10600)) << "the history's prediction is above the tolerance here";
  auto fail = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &far);
  EXPECT_EQ(fail.verdict, Verdict::fail) << fail.message;
  EXPECT_EQ(fail.extra["history_verdict"], "regressed");
  EXPECT_NE(fail.message.find("vs baseline 106us (median of 8 runs; "), std::string::npos) << fail.message;
  EXPECT_NE(fail.message.find("regressed at confidence 99%"), std::string::npos) << fail.message;

  // Per-cell judging: the gate matches many cells, so one cell's bound is higher.
  const auto lone = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &usual, 1).bound;
  const auto among = evaluate_regression_gate(gate, cell, CellStatus::measured, "", &usual, 1000).bound;
  ASSERT_GT(among, lone);
  Histogram between = spread(100, 10, 20, (lone.count() + among.count()) / 2);
  EXPECT_EQ(evaluate_regression_gate(gate, cell, CellStatus::measured, "", &between, 1).verdict, Verdict::fail);
  EXPECT_EQ(evaluate_regression_gate(gate, cell, CellStatus::measured, "", &between, 1000).verdict, Verdict::pass);
  // The gate's confidence is the one used.
  GateSpec strict = gate;
  strict.confidence = 0.999;
  auto s = evaluate_regression_gate(strict, cell, CellStatus::measured, "", &usual);
  EXPECT_DOUBLE_EQ(s.extra["confidence"].get<double>(), 0.999);
  EXPECT_GT(s.bound, pass.bound);
  // `last`: the newest 2 runs only (too few for a spread: the tolerance rule over their median).
  RegressionSpec two = spec;
  two.last = 2;
  GateSpec recent = gate;
  recent.regression = std::make_shared<const RegressionSpec>(two);
  auto r2 = evaluate_regression_gate(recent, cell, CellStatus::measured, "", &usual);
  EXPECT_EQ(r2.extra["baseline_runs"], 2);
  EXPECT_EQ(r2.extra["baseline_ns"], 103000);  // the median of r6 (98us) and r7 (108us)
  EXPECT_TRUE(r2.extra["confidence"].is_null());
}

TEST(CompareFacts, ListsTheSettingsThatDifferAndLeavesOutVolatileOnes) {
  json base{{"host_facts", {{"kernel_release", "6.1.0-57-rt-amd64"},
                            {"tuning", {{"clocksource", "tsc"}, {"kvm_module_parameters", {{"kvm.halt_poll_ns", "200000"}}}}}}},
            {"facts", {{"backend", {{"qemu", {{"version", "7.2.22"}, {"program", "/usr/bin/qemu"}}},
                                    {"boot", {{"guest_boot_ns", 3583136450LL}}},
                                    {"tuning", {{"threads", json::array({json{{"tid", 1}}})}}}}},
                       {"probe", {{"argv", {"cyclictest", "-q"}}, {"priority", 95}}}}}};
  json now = base;
  now["host_facts"]["kernel_release"] = "6.1.0-58-rt-amd64";
  now["host_facts"]["tuning"]["kvm_module_parameters"]["kvm.halt_poll_ns"] = "0";
  now["facts"]["backend"]["boot"]["guest_boot_ns"] = 1;                       // volatile: not a setting
  now["facts"]["backend"]["tuning"]["threads"][0]["tid"] = 2;                 // volatile
  now["facts"]["probe"]["argv"] = json::array({"cyclictest", "-q", "-m"});    // volatile (temp paths)
  now["facts"]["probe"]["priority"] = 99;
  now["facts"]["backend"]["qemu"].erase("version");
  auto changes = report::fact_changes(&base, &now);
  std::vector<std::string> paths;
  for (const auto& c : changes) paths.push_back(c.path + ": " + c.base + " -> " + c.now);
  EXPECT_EQ(paths, (std::vector<std::string>{"backend.qemu.version: \"7.2.22\" -> (absent)",
                                             "host.kernel_release: \"6.1.0-57-rt-amd64\" -> \"6.1.0-58-rt-amd64\"",
                                             "host.tuning.kvm_module_parameters.kvm.halt_poll_ns: \"200000\" -> \"0\"",
                                             "probe.priority: 95 -> 99"}));
  EXPECT_TRUE(report::fact_changes(&base, &base).empty());
}

// The seed's figures by default: one overlay per seed table's column group
// (a backend's kernel combinations and stress), one per period sweep row.
TEST(Figures, DefaultOverlaysFollowTheSeedTablesColumnGroupsAndTheSweep) {
  std::vector<CellDoc> cells;
  long long max = 20000;
  for (std::string gk : {"nrt", "rt"})
    for (std::string w : {"none", "stress"}) {
      auto a = axes("kvm", w);
      a.emplace_back("guest_kernel", gk);
      cells.push_back({"kvm-" + w + "-" + gk, a, "measured", max += 1000});
    }
  for (std::string p : {"1ms", "100us", "50us"}) cells.push_back({"host-" + p, axes("host", "none", p), "measured", max += 1000});
  cells.push_back({"host-broken", axes("host", "none", "200us"), "infra-error"});  // no line for an unmeasured cell
  auto s = stored("r", cells);
  RunView run = make_run(s);
  auto overlays = default_overlays(run);
  ASSERT_EQ(overlays.size(), 2u);  // kvm's column group; the host sweep (the host's 1ms group has one cell)
  EXPECT_EQ(overlays[0].kind, "seed");
  EXPECT_EQ(overlays[0].title, "kvm (probe = cyclictest, period = 1ms)");
  std::vector<std::string> labels;
  for (const auto& l : overlays[0].lines) labels.push_back(l.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"NRT/NRT, no stress", "NRT/NRT, stress", "NRT/RT, no stress", "NRT/RT, stress"}));
  EXPECT_EQ(run.cells[static_cast<std::size_t>(overlays[0].lines[3].cell)].id, "kvm-stress-rt");
  EXPECT_EQ(overlays[1].kind, "sweep");
  labels.clear();
  for (const auto& l : overlays[1].lines) labels.push_back(l.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"50us", "100us", "1ms"}));

  std::string html = render_html(ReportInput{&run, nullptr, nullptr});
  std::size_t figures = 0;
  for (auto at = html.find("<figure class=\"overlay\""); at != std::string::npos; at = html.find("<figure class=\"overlay\"", at + 1))
    ++figures;
  EXPECT_EQ(figures, 2u);
  // What the page draws them from: each figure's cells and labels.
  const json figures_data = page_data(ReportInput{&run, nullptr, nullptr}).shared;
  EXPECT_NE(html.find("<figure class=\"overlay\" data-kind=\"seed\" data-draw=\"both\" data-cells=\"kvm-none-nrt kvm-stress-nrt "
                      "kvm-none-rt kvm-stress-rt\" data-figure=\"0\">"), std::string::npos) << html;
  EXPECT_EQ(figures_data["figures"][0]["lines"].size(), 4u);
  EXPECT_EQ(figures_data["figures"][0]["lines"][3], json::array({overlays[0].lines[3].cell, "NRT/RT, stress"}));
  EXPECT_EQ(figures_data["figures"][1]["lines"].size(), 3u);
}

// [[expect]] claims in a report: judged again from run.json's specs and the
// stored histograms; a claim across two runs (one per host kernel) has no
// pair in either run and holds in their merged report; hostile names stay text.
TEST(Claims, AClaimAcrossTwoRunsIsJudgedInTheirMergedReport) {
  auto kvm = [](const std::string& host, const std::string& guest, std::uint64_t floor_us) {
    auto a = axes("kvm", "none");
    a.emplace_back("host_kernel", host);
    a.emplace_back("guest_kernel", guest);
    CellDoc c{"kvm-none-" + host + "-" + guest, a, "measured", static_cast<long long>(floor_us + 10) * 1000};
    c.floor_us = floor_us;
    return c;
  };
  const json spec = {{"name", "rt/rt p50 < nrt/nrt p50 <script>x</script>"},
                     {"stat", "p50"},
                     {"smaller", {{"host_kernel", {"rt"}}, {"guest_kernel", {"rt"}}}},
                     {"larger", {{"host_kernel", {"nrt"}}, {"guest_kernel", {"nrt"}}}},
                     {"confidence", 0.99},
                     {"gate", true}};
  auto nrt_run = stored("nrt-host", {kvm("nrt", "nrt", 40)});
  auto rt_run = stored("rt-host", {kvm("rt", "rt", 5)});
  nrt_run.run["expects"] = json::array({spec});
  rt_run.run["expects"] = json::array({spec});
  std::vector<RunView> runs{make_run(nrt_run), make_run(rt_run)};
  for (const auto& one : runs) {
    ASSERT_EQ(one.claims.size(), 1u);
    EXPECT_EQ(one.claims[0].verdict, "inconclusive");
    EXPECT_NE(one.claims[0].reason.find("no measured pair"), std::string::npos);
    EXPECT_EQ(one.verdict.word, "MEASURED");  // inconclusive never fails
  }
  RunView merged = merge_runs(runs);
  ASSERT_EQ(merged.claims.size(), 1u);  // the same claim of both runs, once
  EXPECT_EQ(merged.claims[0].verdict, "holds") << merged.claims[0].reason;
  ASSERT_EQ(merged.claims[0].pairs.size(), 1u);
  EXPECT_EQ(merged.claims[0].pairs[0].smaller.run_id, "rt-host");
  EXPECT_EQ(merged.claims[0].pairs[0].larger.run_id, "nrt-host");
  EXPECT_NE(merged.verdict.detail.find("claims: 1 hold, 0 violated, 0 inconclusive"), std::string::npos) << merged.verdict.detail;
  json j = render_json(ReportInput{&merged, nullptr, nullptr});
  ASSERT_EQ(j["expects"].size(), 1u);
  EXPECT_EQ(j["expects"][0]["verdict"], "holds");
  // Samples in [40, 45) us against [5, 10) us: p50's intervals lie within them.
  EXPECT_GE(j["expects"][0]["pairs"][0]["larger"]["low_ns"].get<double>(), 40000.0);
  EXPECT_LE(j["expects"][0]["pairs"][0]["smaller"]["high_ns"].get<double>(), 10000.0);
  std::string html = render_html(ReportInput{&merged, nullptr, nullptr});
  EXPECT_NE(html.find("<tr class=\"claim v-holds\" data-verdict=\"holds\">"), std::string::npos);
  EXPECT_EQ(html.find("<script>x"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;x"), std::string::npos);
  std::string md = render_markdown(ReportInput{&merged, nullptr, nullptr});
  EXPECT_NE(md.find("### Claims"), std::string::npos) << md;
  EXPECT_EQ(md.find("<script>x"), std::string::npos) << md;

  // The other way round the same data violate a gating claim: the verdict is FAIL.
  json reversed = spec;
  std::swap(reversed["smaller"], reversed["larger"]);
  nrt_run.run["expects"] = json::array({reversed});
  rt_run.run["expects"] = json::array();
  std::vector<RunView> again{make_run(nrt_run), make_run(rt_run)};
  RunView failing = merge_runs(again);
  ASSERT_EQ(failing.claims.size(), 1u);
  EXPECT_EQ(failing.claims[0].verdict, "violated");
  EXPECT_EQ(failing.verdict.word, "FAIL");
  EXPECT_NE(failing.verdict.detail.find("1 gating claim violated"), std::string::npos) << failing.verdict.detail;
}
