// End to end: `vmlat compare`, `vmlat report` and regression gates on real
// runs (host backend, both probe engines, 1s cells). A "worse" run is a copy
// of a real one with one cell's max made worse, so that the verdicts do not
// depend on this noisy machine; latency itself is never asserted to be low.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base64.hpp"
#include "cli_fixture.hpp"
#include "sha256.hpp"
#include "vmlat/json.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) { return vmlat::testing::read_file(p); }

json read_json(const fs::path& p) { return json::parse(read(p)); }

void write_json(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(1); }

// Sets the merged and per-CPU max of a cell (stats, histogram, run.json)
// to `max_ns`, with a sample in the bucket of the new max.
void set_max(const fs::path& run_dir, const std::string& cell_id, long long max_ns) {
  auto path = run_dir / "cells" / cell_id / "result.json";
  json r = read_json(path);
  auto update = [&](json& series) {
    series["stats"]["max_ns"] = max_ns;
    series["histogram"]["max_ns"] = max_ns;
    auto& buckets = series["histogram"]["buckets"];
    auto k = static_cast<std::uint64_t>(max_ns / 1000);
    if (buckets.empty() || buckets.back()[0].get<std::uint64_t>() < k) buckets.push_back({k, 1});
  };
  update(r["merged"]);
  for (auto& [cpu, doc] : r["per_cpu"].items()) update(doc);
  write_json(path, r);
  json run = read_json(run_dir / "run.json");
  for (auto& c : run["cells"])
    if (c["id"] == cell_id) c["max_ns"] = max_ns;
  write_json(run_dir / "run.json", run);
}

// The page's index (docs/report.md, "The page's data") and a cell of it.
json page_index(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"vmlat-index\">";
  const auto at = page.find(open);
  if (at == std::string::npos) return json::object();
  const auto from = at + open.size();
  return json::parse(page.substr(from, page.find("</script>", from) - from));
}
const json* indexed(const json& index, const std::string& id) {
  if (!index.contains("cells")) return nullptr;
  for (const auto& c : index["cells"])
    if (c["id"] == id) return &c;
  return nullptr;
}

long long max_of(const fs::path& run_dir, const std::string& cell_id) {
  return read_json(run_dir / "cells" / cell_id / "result.json")["merged"]["stats"]["max_ns"].get<long long>();
}

class ReportE2E : public vmlat::testing::CliTest {
 protected:
  // One real run of `plan_text` into dir_/name; returns the run directory.
  fs::path run(const std::string& name, const std::string& plan_text, int expected_code = 0) {
    auto plan = write_plan(name + ".toml", plan_text);
    auto r = vmlat({"run", plan.string(), "--results", (dir_ / name).string()});
    EXPECT_EQ(r.code, expected_code) << r.out << r.err;
    last_ = r;
    return fs::canonical(dir_ / name / "latest");
  }
  vmlat::testing::CliResult last_;
};


std::string one_cell_with_regression_gate(const fs::path& baseline, const std::string& tolerance = "10%") {
  return vmlat::testing::kOneNativeCellPlan + R"([[gate]]
name = "no-regression"
stat = "max"
regression = { baseline = ")" + baseline.string() + R"(", tolerance = ")" + tolerance + R"(" }
)";
}

}  // namespace

TEST_F(ReportE2E, CompareFindsAMaxMadeWorseAndPassesAnIdenticalPair) {
  auto base = run("base", vmlat::testing::kBothEnginesPlan);
  const std::string cell = "host-none-native-1ms";
  auto worse = dir_ / "worse";
  fs::copy(base, worse, fs::copy_options::recursive);
  long long before = max_of(base, cell);
  long long after = before * 3 + 1000000;  // +200% and 1ms: beyond 10% whatever the machine measured
  set_max(worse, cell, after);

  auto same = vmlat({"compare", base.string(), base.string()});
  EXPECT_EQ(same.code, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("OK: 2 cells compared, 0 regressed"), std::string::npos) << same.out;

  // A results root works as well as a run directory (its "latest").
  auto r = vmlat({"compare", (dir_ / "base").string(), worse.string()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("REGRESSION " + cell + ": max "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("REGRESSION host-none-cyclictest-1ms"), std::string::npos) << r.out;
  auto json_r = vmlat({"compare", base.string(), worse.string(), "--format", "json"});
  EXPECT_EQ(json_r.code, 1);
  json j = json::parse(json_r.out);
  EXPECT_EQ(j["cells"][0]["cell"], cell);
  ASSERT_EQ(j["cells"][0]["stats"][3]["stat"], "max");
  EXPECT_EQ(j["cells"][0]["stats"][3]["verdict"], "regressed");
  EXPECT_EQ(j["cells"][0]["stats"][3]["base_ns"], before);
  EXPECT_EQ(j["cells"][0]["stats"][3]["new_ns"], after);
  EXPECT_EQ(j["cells"][0]["stats"][3]["delta_ns"], after - before);

  // A tolerance that covers the change passes; the other direction is an improvement.
  auto wide = vmlat({"compare", base.string(), worse.string(), "--tolerance", "max=1h"});
  EXPECT_EQ(wide.code, 0) << wide.out;
  auto better = vmlat({"compare", worse.string(), base.string(), "--format", "markdown"});
  EXPECT_EQ(better.code, 0) << better.out;
  EXPECT_NE(better.out.find("improved"), std::string::npos) << better.out;

  // A cell that NEW did not measure: exit 3, named.
  auto partial = dir_ / "partial";
  fs::copy(base, partial, fs::copy_options::recursive);
  json pr = read_json(partial / "cells" / cell / "result.json");
  pr["status"] = "infra-error";
  pr["error"] = "the probe died";
  pr["merged"] = nullptr;
  write_json(partial / "cells" / cell / "result.json", pr);
  auto missing = vmlat({"compare", base.string(), partial.string()});
  EXPECT_EQ(missing.code, 3) << missing.out;
  EXPECT_NE(missing.out.find("NOT MEASURED in new: " + cell + " (infra-error: the probe died)"), std::string::npos) << missing.out;

  auto bad = vmlat({"compare", base.string(), (dir_ / "nowhere").string()});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("is not a run directory"), std::string::npos) << bad.err;
  EXPECT_EQ(vmlat({"compare", base.string()}).code, 2);
  EXPECT_EQ(vmlat({"compare", base.string(), base.string(), "--tolerance", "10"}).code, 2);
  EXPECT_EQ(vmlat({"compare", base.string(), base.string(), "--tolerance", "p42=1us"}).code, 2);
  EXPECT_EQ(vmlat({"compare", base.string(), base.string(), "--last", "0"}).code, 2);
  EXPECT_EQ(vmlat({"compare", base.string(), base.string(), "--confidence", "1"}).code, 2);
}

TEST_F(ReportE2E, CompareTakesAResultsDirectoryAsAHistory) {
  auto base = run("base", vmlat::testing::kBothEnginesPlan);
  const std::string cell = "host-none-native-1ms";
  const long long before = max_of(base, cell);
  // Five earlier runs of the plan (copies of a real one, maxima spread by a
  // few percent), one interrupted and one of another plan beside them.
  auto hist = dir_ / "hist";
  fs::create_directories(hist);
  auto copy_as = [&](const std::string& id, const std::string& started, long long max_ns) {
    fs::copy(base, hist / id, fs::copy_options::recursive);
    set_max(hist / id, cell, max_ns);
    json run = read_json(hist / id / "run.json");
    run["run_id"] = id;
    run["started"] = started;
    write_json(hist / id / "run.json", run);
    return hist / id;
  };
  const long long spread[] = {100, 104, 97, 102, 99};
  for (int i = 0; i < 5; ++i)
    copy_as("r" + std::to_string(i), "2026-01-0" + std::to_string(i + 1) + "T00:00:00Z", before * spread[i] / 100);
  json other = read_json(copy_as("other", "2026-01-06T00:00:00Z", before) / "run.json");
  other["plan"]["name"] = "another-plan";
  write_json(hist / "other" / "run.json", other);
  json cut = read_json(copy_as("cut", "2026-01-06T00:00:00Z", before) / "run.json");
  cut["status"] = "interrupted";
  write_json(hist / "cut" / "run.json", cut);
  auto worse = dir_ / "worse";
  fs::copy(base, worse, fs::copy_options::recursive);
  set_max(worse, cell, before * 3 + 1000000);  // started now: after every run of hist

  auto all = vmlat({"compare", hist.string(), worse.string(), "--format", "json"});
  EXPECT_EQ(all.code, 1) << all.out << all.err;
  json j = json::parse(all.out);
  EXPECT_EQ(j["history"]["runs"], json({"r0", "r1", "r2", "r3", "r4"}));
  EXPECT_EQ(j["cells"][0]["cell"], cell);
  EXPECT_EQ(j["cells"][0]["stats"][3]["verdict"], "regressed");
  EXPECT_EQ(j["cells"][0]["stats"][3]["runs"], 5);
  EXPECT_DOUBLE_EQ(j["cells"][0]["stats"][3]["confidence"].get<double>(), 0.99);
  auto last = vmlat({"compare", hist.string(), worse.string(), "--last", "2", "--format", "json"});
  EXPECT_EQ(json::parse(last.out)["history"]["runs"], json({"r3", "r4"})) << last.out;
  // Several run directories are a history too; the text says how it judged.
  auto listed = vmlat({"compare", (hist / "r0").string(), (hist / "r1").string(), (hist / "r2").string(), base.string(),
                       "--confidence", "0.95"});
  EXPECT_EQ(listed.code, 0) << listed.out << listed.err;
  EXPECT_NE(listed.out.find("baseline: 3 earlier runs (r0 .. r2): BASE is their median; verdicts at confidence 95%"),
            std::string::npos)
      << listed.out;
  // A results directory without an earlier complete run of the plan: usage.
  auto none = vmlat({"compare", (dir_ / "base").string(), worse.string()});
  EXPECT_EQ(none.code, 1) << none.err;  // base's own run is there and earlier
  fs::create_directories(dir_ / "empty");
  auto empty = vmlat({"compare", (dir_ / "empty").string(), worse.string()});
  EXPECT_EQ(empty.code, 2);
  EXPECT_NE(empty.err.find("no complete run of plan"), std::string::npos) << empty.err;
}

TEST_F(ReportE2E, HistoryFindsAStepAtTheRunWhereTheKernelChangedAndNoneWithoutIt) {
  auto base = run("base", vmlat::testing::kBothEnginesPlan);
  const std::string cell = "host-none-native-1ms";
  const long long before = max_of(base, cell);
  // 20 runs made from the real one: the max within a few percent of it; in
  // the stepped history the max is 4x from run 12 on, where the host's
  // kernel changed.
  auto make = [&](const fs::path& root, bool step) {
    fs::create_directories(root);
    unsigned lcg = 18;
    for (int i = 0; i < 20; ++i) {
      lcg = lcg * 1103515245u + 12345u;
      const long long noise = static_cast<long long>((lcg >> 16) % 100) - 50;  // -5.0% .. +4.9%
      const bool after = step && i >= 12;
      char id[8];
      std::snprintf(id, sizeof id, "r%02d", i);
      auto dir = root / id;
      fs::copy(base, dir, fs::copy_options::recursive);
      set_max(dir, cell, (after ? 4 : 1) * (before + before * noise / 1000));
      json r = read_json(dir / "run.json");
      r["run_id"] = id;
      r["started"] = std::string("2026-02-01T00:00:") + (id + 1) + "Z";  // r07 -> ...00:07Z
      write_json(dir / "run.json", r);
      if (after)
        for (const auto& c : r["cells"]) {
          auto path = dir / c["dir"].get<std::string>() / "result.json";
          json res = read_json(path);
          res["host_facts"]["kernel_release"] = "6.1.0-99-amd64";
          write_json(path, res);
        }
    }
  };
  make(dir_ / "stepped", true);
  make(dir_ / "flat", false);

  auto stepped = vmlat({"history", (dir_ / "stepped").string(), "--format", "json"});
  ASSERT_EQ(stepped.code, 0) << stepped.err;
  json j = json::parse(stepped.out);
  EXPECT_EQ(j["runs"].size(), 20u);
  ASSERT_EQ(j["change_points"].size(), 1u) << j["change_points"].dump(1);
  const json& cp = j["change_points"][0];
  EXPECT_EQ(cp["cell"], cell);
  EXPECT_EQ(cp["stat"], "max");
  EXPECT_EQ(cp["run_id"], "r12");
  EXPECT_GT(cp["after_ns"].get<long long>(), 3 * cp["before_ns"].get<long long>());
  bool kernel = false;
  for (const auto& f : cp["facts_changed"]) kernel = kernel || (f["fact"] == "host.kernel_release" && f["after"] == "\"6.1.0-99-amd64\"");
  EXPECT_TRUE(kernel) << cp.dump(1);
  auto text = vmlat({"history", (dir_ / "stepped").string()});
  EXPECT_NE(text.out.find("CHANGE " + cell + " max at run r12: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("host.kernel_release: "), std::string::npos) << text.out;
  auto md = vmlat({"history", (dir_ / "stepped").string(), "--format", "markdown"});
  EXPECT_NE(md.out.find("| " + cell + " | max | r12 |"), std::string::npos) << md.out;

  // The history page: the step marked once, on the cell's plot, at r12; the fact named there.
  const auto page_path = dir_ / "history.html";
  auto html = vmlat({"history", (dir_ / "stepped").string(), "--format", "html", "--output", page_path.string()});
  ASSERT_EQ(html.code, 0) << html.err;
  const std::string page = read(page_path);
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(page, "<line class=\"change stat-max\""), 1u) << page;
  EXPECT_EQ(count(page, "<line class=\"change"), 1u);
  EXPECT_NE(page.find("data-stat=\"max\" data-run-id=\"r12\"><title>max changed at run r12: "), std::string::npos);
  EXPECT_NE(page.find("<tr class=\"change-point\" data-cell-id=\"" + cell + "\" data-stat=\"max\" data-run-id=\"r12\">"),
            std::string::npos);
  EXPECT_NE(page.find("<li class=\"fact\" data-fact=\"host.kernel_release\">"), std::string::npos);
  EXPECT_EQ(count(page, "class=\"plot history\""), 2u) << "one plot per cell";
  EXPECT_EQ(count(page, "<tr><td class=\"num\">"), 20u) << "every run listed";
  EXPECT_EQ(vmlat({"history", (dir_ / "stepped").string(), "--format", "pdf"}).code, 2);
  // The change-point metrics for a textfile: the step's run and its start.
  const std::string plan = read_json(base / "run.json")["plan"]["name"].get<std::string>();
  auto prom = vmlat({"history", (dir_ / "stepped").string(), "--format", "prometheus"});
  ASSERT_EQ(prom.code, 0) << prom.err;
  EXPECT_NE(prom.out.find("vmlat_change_point_timestamp_seconds{plan=\"" + plan + "\",host=\"local\",cell=\"" + cell +
                          "\",stat=\"max\",run_id=\"r12\",facts=\"host.kernel_release\"} 1769904012"),
            std::string::npos)
      << prom.out;

  // A push that fails: the output is still written, exit 4 (nothing listens on port 1 of the loopback).
  auto unpushed = vmlat({"history", (dir_ / "stepped").string(), "--push", "http://127.0.0.1:1", "--push-timeout", "1s"});
  EXPECT_EQ(unpushed.code, 4) << unpushed.err;
  EXPECT_NE(unpushed.out.find("CHANGE " + cell + " max at run r12: "), std::string::npos) << unpushed.out;
  EXPECT_NE(unpushed.err.find("push of the history of " + plan), std::string::npos) << unpushed.err;

  auto flat = vmlat({"history", (dir_ / "flat").string(), "--format", "json"});
  ASSERT_EQ(flat.code, 0) << flat.err;
  const auto flat_page_path = dir_ / "flat.html";
  ASSERT_EQ(vmlat({"history", (dir_ / "flat").string(), "--format", "html", "--output", flat_page_path.string()}).code, 0);
  const std::string flat_page = read(flat_page_path);
  EXPECT_EQ(count(flat_page, "class=\"change"), 0u);
  EXPECT_EQ(count(flat_page, "class=\"plot history\""), 2u);
  auto flat_prom = vmlat({"history", (dir_ / "flat").string(), "--format", "prometheus"});
  EXPECT_EQ(flat_prom.out.find("vmlat_change_point_"), std::string::npos) << flat_prom.out;
  EXPECT_NE(flat_prom.out.find("vmlat_history_change_points{plan=\"" + plan + "\"} 0"), std::string::npos) << flat_prom.out;
  EXPECT_TRUE(json::parse(flat.out)["change_points"].empty()) << flat.out;
  EXPECT_NE(vmlat({"history", (dir_ / "flat").string()}).out.find("no change points"), std::string::npos);
  EXPECT_EQ(vmlat({"history", (dir_ / "nowhere").string()}).code, 2);
}

TEST_F(ReportE2E, ReportWritesHtmlBesideTheRunAndMarkdownAndJsonToStdout) {
  auto dir = run("runs", vmlat::testing::kBothEnginesPlan);
  auto html = vmlat({"report", (dir_ / "runs").string()});
  ASSERT_EQ(html.code, 0) << html.err;
  ASSERT_TRUE(fs::exists(dir / "report.html"));
  std::string page = read(dir / "report.html");
  const json index = page_index(page);
  for (const std::string cell : {"host-none-cyclictest-1ms", "host-none-native-1ms"}) {
    const json* c = indexed(index, cell);
    ASSERT_NE(c, nullptr) << cell;
    EXPECT_EQ((*c)["max"], max_of(dir, cell)) << cell;
  }
  // The page's script runs: the Content-Security-Policy names its hash.
  const auto code = page.rfind("<script>"), end = page.rfind("</script>");
  ASSERT_NE(code, std::string::npos);
  const std::string script = page.substr(code + 8, end - code - 8);
  EXPECT_NE(page.find("script-src 'sha256-" + vmlat::base64(vmlat::sha256_digest(script)) + "'"), std::string::npos);
  EXPECT_NE(page.find("class=\"vmlat-cells\" data-first=\"0\" data-count=\"2\""), std::string::npos);
  auto md = vmlat({"report", dir.string(), "--format", "markdown"});
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_NE(md.out.find("**PASS**"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("### Worst cases: probe = native, period = 1ms"), std::string::npos) << md.out;
  auto js = vmlat({"report", dir.string(), "--format", "json", "--output", (dir_ / "r.json").string()});
  ASSERT_EQ(js.code, 0) << js.err;
  json j = read_json(dir_ / "r.json");
  EXPECT_EQ(j["schema"], "vmlat-report/1");
  EXPECT_EQ(j["cells"].size(), 2u);
  auto with_base = vmlat({"report", dir.string(), "--baseline", dir.string(), "--output", "-"});
  ASSERT_EQ(with_base.code, 0);
  EXPECT_NE(with_base.out.find("<section id=\"comparison\">"), std::string::npos);
  // How long to run, before running: what a 1s cell within the bound shows
  // (ln(100) per second of measuring = 16,578 per hour) and the 4.61 h that
  // would show fewer than one exceedance per hour.
  auto plan = write_plan("both.toml", vmlat::testing::kBothEnginesPlan);
  auto shown = vmlat({"plan", plan.string()});
  EXPECT_NE(shown.out.find("how long to run, gate max<=10s: a 1s cell that stays within 10s shows at 99% only that max "
                           "exceeds it less than 1.66e+04 times per hour; less than once per hour takes 4.61 h without "
                           "exceeding it"),
            std::string::npos)
      << shown.out;
  for (const std::string cmd : {"report", "compare", "history"}) {
    auto help = vmlat({cmd, "--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("usage: vmlat " + cmd), std::string::npos) << help.out;
  }
  EXPECT_EQ(vmlat({"report", (dir_ / "nowhere").string()}).code, 2);
  EXPECT_EQ(vmlat({"report", dir.string(), "--format", "pdf"}).code, 2);
  EXPECT_EQ(vmlat({"report", dir.string(), "--output", (dir_ / "no" / "such" / "dir" / "r.html").string()}).code, 3);
}

// Two real runs (as two CI jobs would make them) merged by the CLI: the cell
// both measured is shown once per run, each marked with its run, and the
// failing gate of the second run makes the merged verdict FAIL.
TEST_F(ReportE2E, ReportMergesRunsKeepingACellOfBothRunsTwice) {
  auto first = run("first", vmlat::testing::kOneNativeCellPlan);
  auto second = run("second", vmlat::testing::kOneNativeCellPlan + R"([[gate]]
name = "impossible"
stat = "max"
bound = "1ns"
)", 1);
  const std::string first_id = first.filename().string(), second_id = second.filename().string();
  ASSERT_NE(first_id, second_id);
  auto js = vmlat({"report", first.string(), (dir_ / "second").string(), "--format", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  json j = json::parse(js.out);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["run_id"], first_id);
  EXPECT_EQ(j["runs"][0]["verdict"], "MEASURED");
  EXPECT_EQ(j["runs"][1]["verdict"], "FAIL");
  EXPECT_EQ(j["verdict"]["word"], "FAIL");
  ASSERT_EQ(j["cells"].size(), 2u);
  EXPECT_EQ(j["cells"][0]["id"], j["cells"][1]["id"]);
  EXPECT_EQ(j["cells"][0]["run_id"], first_id);
  EXPECT_EQ(j["cells"][0]["also_in"], json::array({second_id}));
  EXPECT_EQ(j["cells"][1]["also_in"], json::array({first_id}));
  EXPECT_EQ(j["cells"][1]["max_ns"], max_of(second, j["cells"][1]["id"].get<std::string>()));
  // One seed entry holds the cell of both runs, each run's value kept.
  ASSERT_EQ(j["seed_tables"].size(), 1u);
  const json& entry = j["seed_tables"][0]["entries"][0];
  ASSERT_EQ(entry["by_run"].size(), 2u);
  EXPECT_EQ(entry["by_run"][0]["max_ns"], j["cells"][0]["max_ns"]);
  EXPECT_EQ(entry["by_run"][1]["max_ns"], j["cells"][1]["max_ns"]);

  // HTML: beside the first run by default; each cell marked with its run.
  auto html = vmlat({"report", first.string(), second.string()});
  ASSERT_EQ(html.code, 0) << html.err;
  std::string page = read(first / "report.html");
  EXPECT_NE(page.find("data-verdict=\"FAIL\""), std::string::npos);
  std::vector<std::string> marks;
  const json index = page_index(page);
  for (const auto& c : index["cells"])
    if (c.contains("also")) marks.push_back(c["run"].get<std::string>() + " also " + c["also"][0].get<std::string>());
  EXPECT_EQ(marks, (std::vector<std::string>{first_id + " also " + second_id, second_id + " also " + first_id}));

  auto with_base = vmlat({"report", first.string(), second.string(), "--baseline", first.string()});
  EXPECT_EQ(with_base.code, 2);
  EXPECT_NE(with_base.err.find("--baseline compares one run"), std::string::npos) << with_base.err;
  EXPECT_EQ(vmlat({"report", first.string(), (dir_ / "nowhere").string()}).code, 2);
}

TEST_F(ReportE2E, RegressionGateThroughVmlatRun) {
  auto base = run("base", one_cell_with_regression_gate(dir_ / "none-yet"), 3);  // no baseline yet: exit 3
  EXPECT_NE(last_.err.find("gate 'no-regression': baseline '" + (dir_ / "none-yet").string() + "' cannot be read"),
            std::string::npos) << last_.err;
  EXPECT_NE(last_.out.find("could not be evaluated"), std::string::npos) << last_.out;
  const std::string cell = "host-none-native-1ms";

  // The baseline as a "last-good" link, as a nightly job keeps it.
  auto tight = dir_ / "tight", loose = dir_ / "loose";
  fs::copy(base, tight, fs::copy_options::recursive);
  fs::copy(base, loose, fs::copy_options::recursive);
  set_max(tight, cell, 1);                       // no real wake-up is within 10% of 1ns
  set_max(loose, cell, 3600LL * 1000000000LL);   // nor is any a regression over an hour
  auto last_good = dir_ / "last-good";
  fs::create_directory_symlink(tight, last_good);

  auto failed = run("night1", one_cell_with_regression_gate(last_good), 1);
  EXPECT_NE(last_.out.find("FAIL: max "), std::string::npos) << last_.out;
  EXPECT_NE(last_.out.find(" vs baseline 1ns ("), std::string::npos) << last_.out;
  json gate = read_json(failed / "cells" / cell / "result.json")["gates"][0];
  EXPECT_EQ(gate["verdict"], "fail");
  EXPECT_EQ(gate["baseline_ns"], 1);
  EXPECT_EQ(gate["bound_ns"], 1);  // 10% of 1ns rounds to 0
  EXPECT_EQ(gate["baseline_run"], read_json(base / "run.json")["run_id"]);

  fs::remove(last_good);
  fs::create_directory_symlink(loose, last_good);
  auto passed = run("night2", one_cell_with_regression_gate(last_good), 0);
  EXPECT_EQ(read_json(passed / "cells" / cell / "result.json")["gates"][0]["verdict"], "pass");

  // A cell the baseline does not have: skipped and said, not passed silently.
  auto renamed = dir_ / "renamed";
  fs::copy(base, renamed, fs::copy_options::recursive);
  json run_json = read_json(renamed / "run.json");
  run_json["cells"][0]["id"] = "host-none-native-2ms";
  run_json["cells"][0]["dir"] = "cells/host-none-native-2ms";
  write_json(renamed / "run.json", run_json);
  fs::rename(renamed / "cells" / cell, renamed / "cells" / "host-none-native-2ms");
  json result = read_json(renamed / "cells" / "host-none-native-2ms" / "result.json");
  result["cell"]["id"] = "host-none-native-2ms";
  write_json(renamed / "cells" / "host-none-native-2ms" / "result.json", result);
  auto skipped = run("night3", one_cell_with_regression_gate(renamed), 0);
  EXPECT_NE(last_.out.find("skipped: no baseline: cell " + cell + " is not in baseline run"), std::string::npos) << last_.out;
  EXPECT_EQ(read_json(skipped / "cells" / cell / "result.json")["gates"][0]["verdict"], "skipped");

  // The report of the failed night says by how much.
  auto md = vmlat({"report", failed.string(), "--format", "markdown"});
  EXPECT_NE(md.out.find("**FAIL**"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("| **fail** | " + std::string("host-none-native-1ms") + " | no-regression (max) |"), std::string::npos) << md.out;
}
