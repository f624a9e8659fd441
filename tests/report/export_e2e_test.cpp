// End to end: `vmlat export` of real host runs (both probe engines, 1s
// cells), each format read back by a checker written from that format's
// documentation: KCIDB v5 against the rules of kcidb-io's schema v5.0,
// rt-tests JSON by our own cyclictest JSON parser, LAVA lines by their
// documented grammar (and run by /bin/sh against a fake lava-test-case that
// records its arguments: LAVA's own helper cannot run here).
// Latency is never asserted to be low: one gate bounds max by 1ns so that it
// fails whatever this machine measures, one bounds p99 by 10s.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <set>

#include "cli_fixture.hpp"
#include "cyclictest_parse.hpp"
#include "vmlat/json.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

// Both engines, with a max gate of 10s (the fixture's) and these two.
const std::string kPlan = vmlat::testing::kBothEnginesPlan + R"([[gate]]
name = "tight"
stat = "max"
bound = "1ns"
[[gate]]
name = "loose"
stat = "p99"
bound = "10s"
)";

json read_json(const fs::path& p) { return json::parse(vmlat::testing::read_file(p)); }
void write_json(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(1); }

// --- KCIDB v5.0, as kcidb-io's schema documents it -------------------------

const std::regex kOrigin("^[a-z0-9_]+$");
const std::regex kOriginId("^[a-z0-9_]+:.*$");
const std::regex kTestPath("^([a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)*)?$");
const std::regex kDateTime("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$");
const std::regex kUri("^[A-Za-z][A-Za-z0-9+.-]*:[^ \\t\\n<>\"{}|\\\\^`]*$");  // RFC 3986: scheme ":" and no raw specials
const std::regex kSha1("^[0-9a-f]{40}$");
const std::regex kArch("^[a-z0-9_]*$");

void no_nulls(const json& j, const std::string& where, std::vector<std::string>& errors) {
  if (j.is_null()) errors.push_back(where + " is null (no property may be null)");
  if (j.is_object())
    for (const auto& [k, v] : j.items()) no_nulls(v, where + "." + k, errors);
  if (j.is_array())
    for (std::size_t i = 0; i < j.size(); ++i) no_nulls(j[i], where + "[" + std::to_string(i) + "]", errors);
}

void only_keys(const json& o, const std::set<std::string>& allowed, const std::string& where, std::vector<std::string>& errors) {
  if (!o.is_object()) {
    errors.push_back(where + " is not an object");
    return;
  }
  for (const auto& [k, v] : o.items())
    if (!allowed.count(k)) errors.push_back(where + ": property '" + k + "' is not in the schema");
}

void string_matching(const json& o, const char* key, const std::regex& re, bool required, const std::string& where,
                     std::vector<std::string>& errors) {
  if (!o.contains(key)) {
    if (required) errors.push_back(where + ": '" + key + "' is required");
    return;
  }
  if (!o[key].is_string() || !std::regex_match(o[key].get<std::string>(), re))
    errors.push_back(where + ": '" + key + "' = " + o[key].dump() + " does not match its pattern");
}

void resources(const json& o, const char* key, const std::string& where, std::vector<std::string>& errors) {
  if (!o.contains(key)) return;
  if (!o[key].is_array()) return errors.push_back(where + "." + key + " is not an array");
  for (const auto& r : o[key]) {
    only_keys(r, {"name", "url"}, where + "." + key, errors);
    string_matching(r, "name", std::regex("^[^/]+$"), true, where + "." + key, errors);
    string_matching(r, "url", kUri, true, where + "." + key, errors);
  }
}

std::vector<std::string> kcidb_errors(const json& doc) {
  std::vector<std::string> e;
  no_nulls(doc, "$", e);
  only_keys(doc, {"version", "checkouts", "builds", "tests", "issues", "incidents"}, "$", e);
  if (!doc.contains("version")) e.push_back("version is required");
  else {
    only_keys(doc["version"], {"major", "minor"}, "version", e);
    if (doc["version"].value("major", json()) != json(5)) e.push_back("version.major is not 5");
    const json minor = doc["version"].value("minor", json(0));
    if (!minor.is_number_integer() || minor.get<int>() < 0) e.push_back("version.minor is not an integer >= 0");
  }
  std::set<std::string> checkout_ids, build_ids, test_ids;
  for (const auto& c : doc.value("checkouts", json::array())) {
    only_keys(c, {"_timestamp", "id", "origin", "tree_name", "git_repository_url", "git_commit_hash", "git_commit_name",
                  "git_commit_tags", "git_commit_message", "git_repository_branch", "git_repository_branch_tip",
                  "patchset_files", "patchset_hash", "message_id", "comment", "start_time", "log_url", "log_excerpt",
                  "valid", "misc"},
              "checkout", e);
    string_matching(c, "id", kOriginId, true, "checkout", e);
    string_matching(c, "origin", kOrigin, true, "checkout", e);
    string_matching(c, "git_commit_hash", kSha1, false, "checkout", e);
    string_matching(c, "start_time", kDateTime, false, "checkout", e);
    if (c.contains("id") && !checkout_ids.insert(c["id"].get<std::string>()).second) e.push_back("checkout id repeats");
  }
  for (const auto& b : doc.value("builds", json::array())) {
    only_keys(b, {"_timestamp", "checkout_id", "id", "origin", "comment", "start_time", "duration", "architecture", "command",
                  "compiler", "input_files", "output_files", "config_name", "config_url", "log_url", "log_excerpt", "status",
                  "misc"},
              "build", e);
    string_matching(b, "id", kOriginId, true, "build", e);
    string_matching(b, "checkout_id", kOriginId, true, "build", e);
    string_matching(b, "origin", kOrigin, true, "build", e);
    string_matching(b, "architecture", kArch, false, "build", e);
    if (b.contains("misc") && !b["misc"].is_object()) e.push_back("build.misc is not an object");
    if (b.contains("id") && !build_ids.insert(b["id"].get<std::string>()).second) e.push_back("build id repeats");
    if (!checkout_ids.count(b.value("checkout_id", ""))) e.push_back("build's checkout is not in the document");
  }
  const std::set<std::string> statuses{"FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP"};
  for (const auto& t : doc.value("tests", json::array())) {
    const std::string where = "test " + t.value("id", std::string("?"));
    only_keys(t, {"_timestamp", "build_id", "id", "origin", "environment", "path", "comment", "log_url", "log_excerpt",
                  "status", "number", "waived", "start_time", "duration", "output_files", "misc"},
              where, e);
    string_matching(t, "id", kOriginId, true, where, e);
    string_matching(t, "build_id", kOriginId, true, where, e);
    string_matching(t, "origin", kOrigin, true, where, e);
    string_matching(t, "path", kTestPath, false, where, e);
    string_matching(t, "start_time", kDateTime, false, where, e);
    string_matching(t, "log_url", kUri, false, where, e);
    if (t.contains("status") && !(t["status"].is_string() && statuses.count(t["status"].get<std::string>())))
      e.push_back(where + ": status " + t["status"].dump() + " is not in the enum");
    if (t.contains("number")) {
      only_keys(t["number"], {"value", "unit", "prefix"}, where + ".number", e);
      if (!t["number"].contains("value") || !t["number"]["value"].is_number()) e.push_back(where + ": number.value is required");
      if (t["number"].contains("prefix") && t["number"]["prefix"] != "metric" && t["number"]["prefix"] != "binary")
        e.push_back(where + ": number.prefix is neither metric nor binary");
    }
    if (t.contains("environment")) {
      only_keys(t["environment"], {"compatible", "comment", "misc"}, where + ".environment", e);
      if (t["environment"].contains("misc") && !t["environment"]["misc"].is_object()) e.push_back(where + ": environment.misc");
    }
    if (t.contains("log_excerpt") && t["log_excerpt"].get<std::string>().size() > 16384) e.push_back(where + ": log_excerpt too long");
    if (t.contains("duration") && !t["duration"].is_number()) e.push_back(where + ": duration is not a number");
    resources(t, "output_files", where, e);
    if (t.contains("id") && !test_ids.insert(t["id"].get<std::string>()).second) e.push_back(where + ": id repeats");
    if (!build_ids.count(t.value("build_id", ""))) e.push_back(where + ": its build is not in the document");
  }
  return e;
}

// --- LAVA: lava-test-case NAME --result R [--measurement N --units U] -------

struct LavaCase {
  std::string name, result, measurement, units;
};
const std::regex kLavaName("^[A-Za-z0-9_.-]+$");

std::vector<LavaCase> parse_lava_commands(const std::string& text) {
  std::vector<LavaCase> cases;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    EXPECT_GE(w.size(), 4u) << line;
    if (w.size() < 4) continue;
    EXPECT_EQ(w[0], "lava-test-case") << line;
    LavaCase c{w[1], "", "", ""};
    for (std::size_t i = 2; i + 1 < w.size(); i += 2) {
      if (w[i] == "--result") c.result = w[i + 1];
      else if (w[i] == "--measurement") c.measurement = w[i + 1];
      else if (w[i] == "--units") c.units = w[i + 1];
      else ADD_FAILURE() << "unknown option " << w[i] << " in " << line;
    }
    cases.push_back(c);
  }
  return cases;
}

// <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=... RESULT=... [UNITS=... MEASUREMENT=...]>
std::vector<LavaCase> parse_lava_signals(const std::string& text) {
  std::vector<LavaCase> cases;
  std::istringstream in(text);
  std::string line;
  const std::regex signal("^<LAVA_SIGNAL_TESTCASE ([^>]+)>$");
  while (std::getline(in, line)) {
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, signal)) << line;
    if (m.empty()) continue;
    LavaCase c;
    std::istringstream words(m[1].str());
    for (std::string kv; words >> kv;) {
      auto eq = kv.find('=');
      EXPECT_NE(eq, std::string::npos) << kv;
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "TEST_CASE_ID") c.name = v;
      else if (k == "RESULT") c.result = v;
      else if (k == "MEASUREMENT") c.measurement = v;
      else if (k == "UNITS") c.units = v;
      else ADD_FAILURE() << "unknown key " << k;
    }
    cases.push_back(c);
  }
  return cases;
}

void check_lava_cases(const std::vector<LavaCase>& cases, const json& kcidb) {
  const auto& tests = kcidb["tests"];
  ASSERT_EQ(cases.size(), tests.size());
  const std::set<std::string> results{"pass", "fail", "skip", "unknown"};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto& t = tests[i];
    EXPECT_TRUE(std::regex_match(c.name, kLavaName)) << c.name;
    EXPECT_EQ(c.name, t["path"].get<std::string>());
    EXPECT_TRUE(results.count(c.result)) << c.result;
    const std::string status = t["status"];
    EXPECT_EQ(c.result, status == "FAIL" || status == "ERROR" ? "fail" : status == "SKIP" ? "skip" : status == "MISS" ? "unknown" : "pass")
        << c.name;
    if (t.contains("number")) {
      EXPECT_EQ(c.units, "us") << c.name;
      const double us = std::stod(c.measurement);
      EXPECT_NEAR(us, t["misc"]["value_ns"].get<long long>() / 1000.0, 0.0005) << c.name;
    } else {
      EXPECT_TRUE(c.measurement.empty()) << c.name;
    }
  }
}

class ExportE2E : public vmlat::testing::CliTest {
 protected:
  fs::path measure() {
    auto plan = write_plan("plan.toml", kPlan);
    auto r = vmlat({"run", plan.string(), "--results", (dir_ / "results").string()});
    EXPECT_EQ(r.code, 1) << r.out << r.err;  // the 1ns gate fails
    return fs::canonical(dir_ / "results" / "latest");
  }
  json kcidb(const fs::path& run, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"export", "--format", "kcidb", run.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = vmlat(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }
};

}  // namespace

TEST_F(ExportE2E, KcidbFollowsTheSchemaAndCarriesEveryCellAndStatistic) {
  auto run = measure();
  const json doc = kcidb(run, {"--kcidb-origin", "my_lab", "--kcidb-checkout", "abc", "--kcidb-build", "my_lab:b1",
                               "--kcidb-commit", std::string(40, 'a')});
  auto errors = kcidb_errors(doc);
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
  EXPECT_EQ(doc["checkouts"][0]["id"], "my_lab:abc");
  EXPECT_EQ(doc["builds"][0]["id"], "my_lab:b1");  // already prefixed: kept
  EXPECT_EQ(doc["checkouts"][0]["git_commit_hash"], std::string(40, 'a'));
  const json run_json = read_json(run / "run.json");
  const std::string release = run_json["hosts"].begin().value()["kernel_release"];
  EXPECT_NE(doc["builds"][0]["misc"]["kernel_release"].get<std::string>().find(release), std::string::npos);

  std::map<std::string, json> by_path;
  for (const auto& t : doc["tests"]) by_path[t["path"]] = t;
  EXPECT_EQ(by_path.size(), doc["tests"].size());  // paths are unique
  for (const auto& cell : run_json["cells"]) {
    const std::string id = cell["id"];
    const std::string probe = cell["axes"]["probe"];
    const json result = read_json(run / "cells" / id / "result.json");
    const std::string prefix = "vmlat.host." + probe + "." + id + ".";
    ASSERT_TRUE(by_path.count(prefix + "max")) << prefix;
    const json& max = by_path[prefix + "max"];
    EXPECT_EQ(max["status"], "FAIL");
    EXPECT_EQ(by_path[prefix + "p99"]["status"], "PASS");
    EXPECT_EQ(by_path[prefix + "p99_9"]["status"], "DONE");
    const long long max_ns = result["merged"]["stats"]["max_ns"];
    EXPECT_DOUBLE_EQ(max["number"]["value"].get<double>(), max_ns / 1e9);
    EXPECT_EQ(max["number"]["unit"], "s");
    EXPECT_EQ(max["number"]["prefix"], "metric");
    EXPECT_EQ(max["environment"]["misc"]["axes"], cell["axes"]);
    EXPECT_EQ(max["environment"]["misc"]["host_facts"]["kernel_release"], release);
    std::set<std::string> files;
    for (const auto& f : max["output_files"]) {
      files.insert(f["name"].get<std::string>());
      const std::string url = f["url"];
      ASSERT_EQ(url.rfind("file://", 0), 0u) << url;
      EXPECT_TRUE(fs::is_regular_file(url.substr(7))) << url;  // these paths need no escaping
    }
    EXPECT_TRUE(files.count("result.json"));
    if (probe == "cyclictest") {
      EXPECT_TRUE(files.count("cyclictest.json")) << ::testing::PrintToString(files);
    }
  }

  // The checker itself finds what breaks the schema.
  json broken = doc;
  broken["tests"][0]["status"] = "OK";
  broken["tests"][1]["id"] = "no-origin";
  broken["tests"][2]["path"] = "a..b";
  broken["tests"][3]["number"]["unit"] = nullptr;
  broken["builds"][0]["checkout_id"] = "my_lab:other";
  EXPECT_EQ(kcidb_errors(broken).size(), 5u) << ::testing::PrintToString(kcidb_errors(broken));

  // --artifacts-url: the published run directory instead of this machine's files.
  // Read through the results root's "latest" link: URLs name the run itself.
  const json published = kcidb(dir_ / "results", {"--artifacts-url", "https://lab.example/runs"});
  EXPECT_TRUE(kcidb_errors(published).empty());
  const std::string url = published["tests"][0]["output_files"][0]["url"];
  EXPECT_EQ(url.rfind("https://lab.example/runs/" + run.filename().string() + "/cells/", 0), 0u) << url;
  const json via_latest = kcidb(dir_ / "results");
  const std::string file = via_latest["tests"][0]["output_files"][0]["url"];
  EXPECT_EQ(file.find("/latest/"), std::string::npos) << file;
}

// Runs merged as `vmlat report` merges them (one CI job per host): every
// cell of each, ids and paths still unique (the same run twice is the
// hardest case: equal cell ids, equal run ids).
TEST_F(ExportE2E, MergedRunsKeepEveryCellApart) {
  auto run = measure();
  const fs::path again = dir_ / "again";
  fs::copy(run, again, fs::copy_options::recursive);
  const json one = kcidb(run);
  const json both = kcidb(run, {again.string()});
  auto errors = kcidb_errors(both);
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
  EXPECT_EQ(both["tests"].size(), 2 * one["tests"].size());
  std::set<std::string> paths;
  for (const auto& t : both["tests"]) EXPECT_TRUE(paths.insert(t["path"].get<std::string>()).second) << t["path"];
  const fs::path out = dir_ / "rt";
  auto rt = vmlat({"export", "--format", "rt-tests", "--output", out.string(), run.string(), again.string()});
  ASSERT_EQ(rt.code, 0) << rt.err;
  EXPECT_NE(rt.out.find("4 files"), std::string::npos) << rt.out;
}

TEST_F(ExportE2E, RtTestsJsonReadsBackThroughOurCyclictestParserWithIdenticalHistograms) {
  auto run = measure();
  const fs::path out = dir_ / "rt";
  auto r = vmlat({"export", "--format", "rt-tests", "--output", out.string(), run.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const json run_json = read_json(run / "run.json");
  ASSERT_EQ(run_json["cells"].size(), 2u);
  for (const auto& cell : run_json["cells"]) {
    const std::string id = cell["id"];
    const fs::path file = out / (id + ".json");
    ASSERT_TRUE(fs::is_regular_file(file)) << file;
    const std::string text = vmlat::testing::read_file(file);
    const json doc = json::parse(text);
    // The range an rt-tests reader takes from the command line, as cyclictest writes it.
    std::smatch m;
    const std::string cmdline = doc["cmdline:"];
    ASSERT_TRUE(std::regex_search(cmdline, m, std::regex(" -h ([0-9]+)"))) << cmdline;
    const auto per_cpu = cyclic::parse_cyclictest_json(text, std::stoull(m[1].str()));
    const json result = read_json(run / "cells" / id / "result.json");
    ASSERT_EQ(per_cpu.size(), result["per_cpu"].size());
    for (const auto& [cpu, h] : per_cpu) {
      const json& want = result["per_cpu"][std::to_string(cpu)]["histogram"];
      json got_buckets = json::array();
      for (const auto& [b, n] : h.buckets()) got_buckets.push_back({b, n});
      EXPECT_EQ(got_buckets, want["buckets"]) << id << " CPU " << cpu;
      EXPECT_EQ(h.overflows(), want["overflows"].get<std::uint64_t>());
      EXPECT_EQ(h.min().count(), want["min_ns"].get<long long>() / 1000 * 1000);
      EXPECT_EQ(h.max().count(), want["max_ns"].get<long long>() / 1000 * 1000);
      EXPECT_EQ(h.samples(), result["per_cpu"][std::to_string(cpu)]["stats"]["samples"].get<std::uint64_t>());
    }
    // Laid out as a real cyclictest --json file (the cyclictest cell kept its own).
    if (cell["axes"]["probe"] == "cyclictest") {
      const json real = read_json(run / "cells" / id / "cyclictest.json");
      for (const auto& [k, v] : real.items()) EXPECT_TRUE(doc.contains(k)) << "missing " << k;
      const json& real_thread = real["thread"].begin().value();
      const json& our_thread = doc["thread"].begin().value();
      for (const auto& [k, v] : real_thread.items()) {
        ASSERT_TRUE(our_thread.contains(k)) << "thread lacks " << k;
        EXPECT_EQ(our_thread[k].type_name(), std::string(v.type_name()) == "number" ? our_thread[k].type_name() : v.type_name()) << k;
      }
    }
  }
}

TEST_F(ExportE2E, LavaLinesMatchTheKcidbTestsAndRunAsShellCommands) {
  auto run = measure();
  const json doc = kcidb(run);
  auto commands = vmlat({"export", "--format", "lava", run.string()});
  ASSERT_EQ(commands.code, 0) << commands.err;
  check_lava_cases(parse_lava_commands(commands.out), doc);
  auto signals = vmlat({"export", "--format", "lava-signal", "--output", (dir_ / "signals.txt").string(), run.string()});
  ASSERT_EQ(signals.code, 0) << signals.err;
  check_lava_cases(parse_lava_signals(vmlat::testing::read_file(dir_ / "signals.txt")), doc);
}

// Plan values are hostile: axis values, the host name and artifact names
// with spaces, newlines, markup and "..". Every format must stay well-formed
// and the LAVA lines, run by /bin/sh, must reach lava-test-case as exactly
// one NAME per line.
TEST_F(ExportE2E, HostileValuesStayInsideEveryFormat) {
  auto real = measure();
  const fs::path run = dir_ / "hostile";
  fs::copy(real, run, fs::copy_options::recursive);
  const std::string evil = "a b\n<x>'\"$(touch pwned);`id`..\\/";
  json run_json = read_json(run / "run.json");
  for (auto& c : run_json["cells"]) {
    c["axes"]["workload"] = evil;
    c["axes"]["probe"] = evil + c["axes"]["probe"].get<std::string>();
    c["host"] = evil;
    const fs::path rp = run / "cells" / c["id"].get<std::string>() / "result.json";
    json r = read_json(rp);
    r["cell"]["axes"] = c["axes"];
    r["cell"]["host"] = evil;
    r["artifacts"].push_back("../../run.json");
    r["artifacts"].push_back(evil);
    write_json(rp, r);
  }
  write_json(run / "run.json", run_json);

  const json doc = kcidb(run);
  auto errors = kcidb_errors(doc);
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
  for (const auto& t : doc["tests"]) {
    EXPECT_EQ(t["environment"]["misc"]["axes"]["workload"], evil);  // kept as data, not in names
    for (const auto& f : t["output_files"]) EXPECT_NE(f["name"], "run.json");  // nothing outside the cell
  }

  auto lava = vmlat({"export", "--format", "lava", run.string()});
  ASSERT_EQ(lava.code, 0) << lava.err;
  check_lava_cases(parse_lava_commands(lava.out), doc);
  // A fake lava-test-case (LAVA's helper needs a LAVA job): records argv, one line per argument.
  const fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  {
    std::ofstream fake(bin / "lava-test-case");
    fake << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$FAKE_LOG\"; echo END >> \"$FAKE_LOG\"\n";
  }
  fs::permissions(bin / "lava-test-case", fs::perms::owner_all);
  std::ofstream(dir_ / "steps.sh") << lava.out;
  const fs::path log = dir_ / "fake.log";
  const std::string cmd = "cd '" + dir_.string() + "' && PATH='" + bin.string() + "':/usr/bin:/bin FAKE_LOG='" + log.string() +
                          "' /bin/sh -e steps.sh";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_FALSE(fs::exists(dir_ / "pwned"));
  std::istringstream recorded(vmlat::testing::read_file(log));
  std::size_t calls = 0;
  std::vector<std::string> args;
  for (std::string line; std::getline(recorded, line);) {
    if (line != "END") {
      args.push_back(line);
      continue;
    }
    ASSERT_LT(calls, doc["tests"].size());
    EXPECT_EQ(args.at(0), doc["tests"][calls]["path"]);
    EXPECT_EQ(args.at(1), "--result");
    ++calls;
    args.clear();
  }
  EXPECT_EQ(calls, doc["tests"].size());

  auto signals = vmlat({"export", "--format", "lava-signal", run.string()});
  ASSERT_EQ(signals.code, 0) << signals.err;
  check_lava_cases(parse_lava_signals(signals.out), doc);

  const fs::path out = dir_ / "rt";
  auto rt = vmlat({"export", "--format", "rt-tests", "--output", out.string(), run.string()});
  ASSERT_EQ(rt.code, 0) << rt.err;
  std::size_t files = 0;
  for (const auto& f : fs::directory_iterator(out)) {
    ++files;
    EXPECT_TRUE(std::regex_match(f.path().filename().string(), std::regex("^[A-Za-z0-9_.-]+\\.json$")));
    EXPECT_NO_THROW(json::parse(vmlat::testing::read_file(f.path())));
  }
  EXPECT_EQ(files, 2u);
}

TEST_F(ExportE2E, UsageAndWriteFailuresHaveTheirExitCodes) {
  auto none = vmlat({"export", (dir_ / "nothing").string(), "--format", "kcidb"});
  EXPECT_EQ(none.code, 2) << none.err;
  auto no_format = vmlat({"export", dir_.string()});
  EXPECT_EQ(no_format.code, 2);
  auto bad_format = vmlat({"export", "--format", "junit", dir_.string()});
  EXPECT_EQ(bad_format.code, 2);
  EXPECT_NE(bad_format.err.find("kcidb, lava, lava-signal or rt-tests"), std::string::npos) << bad_format.err;
  auto run = measure();
  EXPECT_EQ(vmlat({"export", "--format", "kcidb", "--kcidb-origin", "My Lab", run.string()}).code, 2);
  EXPECT_EQ(vmlat({"export", "--format", "kcidb", "--kcidb-commit", "abc", run.string()}).code, 2);
  EXPECT_EQ(vmlat({"export", "--format", "rt-tests", run.string()}).code, 2);  // needs --output DIR
  // A file where the directory should be, and a directory that cannot exist.
  std::ofstream(dir_ / "file") << "x";
  auto write = vmlat({"export", "--format", "kcidb", "--output", (dir_ / "file" / "x.json").string(), run.string()});
  EXPECT_EQ(write.code, 4) << write.err;
  auto rt = vmlat({"export", "--format", "rt-tests", "--output", (dir_ / "file" / "rt").string(), run.string()});
  EXPECT_EQ(rt.code, 4) << rt.err;
  auto help = vmlat({"export", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--kcidb-origin"), std::string::npos);
}
