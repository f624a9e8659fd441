#include "export.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <limits>
#include <filesystem>
#include <optional>
#include <ostream>
#include <set>

#include "commands.hpp"
#include "json_access.hpp"
#include "run_store.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/version.hpp"

namespace vmlat::report {

namespace {

namespace fs = std::filesystem;

// The statistics of result.json's stats objects, by the names gates use.
const std::pair<const char*, const char*> kStats[] = {
    {"min", "min_ns"},   {"mean", "mean_ns"},       {"p50", "p50_ns"},         {"p90", "p90_ns"},
    {"p99", "p99_ns"},   {"p99.9", "p99_9_ns"},     {"p99.99", "p99_99_ns"},   {"max", "max_ns"},
};

// KCIDB status of a cell that has no measured value: why not.
std::string unmeasured_status(const Cell& c) {
  if (c.status == "skipped") return "SKIP";
  if (c.status == "infra-error") return "ERROR";
  return "MISS";  // interrupted, not-run, pending: it did not run, nothing is known
}

// The worst of the gates' verdicts on one statistic: fail > error > pass.
// A flaky gate (passed on a retest) does not fail the run by default
// (docs/bisect.md) and reads as PASS; its verdict stays in misc.
std::string gated_status(const std::vector<std::string>& verdicts) {
  if (verdicts.empty()) return "DONE";
  bool error = false, skipped = true;
  for (const auto& v : verdicts) {
    if (v == "fail") return "FAIL";
    if (v == "error") error = true;
    if (v != "skipped") skipped = false;
  }
  return error ? "ERROR" : skipped ? "SKIP" : "PASS";
}

std::string axis_or(const Cell& c, const char* axis, const char* plugin_kind) {
  std::string v = c.axis(axis);
  if (v.empty() && c.result) v = text_of(member(member(*c.result, "plugins"), plugin_kind), "instance");
  return v.empty() ? std::string("none") : v;
}

// JSON without nulls: KCIDB allows no null property anywhere.
json without_nulls(const json& j) {
  if (j.is_object()) {
    json o = json::object();
    for (const auto& [k, v] : j.items())
      if (!v.is_null()) o[k] = without_nulls(v);
    return o;
  }
  if (j.is_array()) {
    json a = json::array();
    for (const auto& v : j)
      if (!v.is_null()) a.push_back(without_nulls(v));
    return a;
  }
  return j;
}

// RFC 3986: unreserved characters and '/' as they are, every other byte %XX.
std::string percent_encode_path(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : path) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::string file_url(const fs::path& file, const fs::path& run_dir, const std::string& base) {
  if (base.empty()) return "file://" + percent_encode_path(fs::absolute(file).lexically_normal().string());
  std::string b = base;
  if (!b.empty() && b.back() != '/') b += '/';
  // Under the base, each run directory by its name (its run id).
  const fs::path rel = run_dir.filename() / file.lexically_relative(run_dir);
  return b + percent_encode_path(rel.generic_string());
}

// "2026-12-06T09:00:54Z" (or with fractions/offset ignored) -> time_t, UTC.
std::optional<std::time_t> parse_iso_utc(const std::string& text) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return timegm(&tm);
}

// cyclictest's own format: "Sun, 06 Dec 2026 09:00:54 +0000".
std::string rfc2822(const std::string& iso) {
  auto t = parse_iso_utc(iso);
  if (!t) return iso;
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&*t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string microseconds_text(long long ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1000.0);
  return buf;
}

// "origin:rest" as KCIDB wants ids; an ID already starting with "<origin>:" is kept.
std::string with_origin(const std::string& origin, const std::string& id) {
  return id.rfind(origin + ":", 0) == 0 ? id : origin + ":" + id;
}

int write_failed(const std::string& path, const std::exception& e, std::ostream& err) {
  err << "vmlat: export: cannot write " << path << ": " << e.what() << "\n";
  return exit_code::export_failed;
}

}  // namespace

std::string name_segment(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) out += (std::isalnum(ch) || ch == '_' || ch == '-') && ch < 0x80 ? static_cast<char>(ch) : '_';
  return out.empty() ? std::string("_") : out;
}

std::vector<ExportedStat> exported_stats(const Run& run) {
  std::vector<ExportedStat> all;
  std::set<std::string> paths;
  for (const auto& c : run.cells) {
    const std::string prefix = "vmlat." + name_segment(axis_or(c, "backend", "backend")) + "." +
                               name_segment(axis_or(c, "probe", "probe")) + "." + name_segment(c.id);
    std::string cell_prefix = prefix;
    // Cell ids differing only in characters a path cannot hold: the index keeps them apart.
    for (int n = 2; paths.count(cell_prefix); ++n) cell_prefix = prefix + "-" + std::to_string(c.index) + (n > 2 ? "-" + std::to_string(n) : "");
    paths.insert(cell_prefix);
    std::vector<Series> series = c.series;
    if (series.empty()) series.push_back(Series{kDefaultSeries, nullptr, {}});  // unmeasured: its statistics are still listed
    for (std::size_t s = 0; s < series.size(); ++s) {
      const Series& se = series[s];
      const bool is_default = s == 0;
      const json* stats = se.merged ? object_at(*se.merged, "stats") : nullptr;
      // The standard statistics, then any other a gate bounds (p95, rl1h).
      std::vector<std::string> names;
      for (const auto& [name, key] : kStats) names.push_back(name);
      for (const json* g : c.gates) {
        const std::string gs = text_of(*g, "stat");
        const std::string gseries = text_of(*g, "series");
        if ((gseries.empty() ? is_default : gseries == se.name) && !gs.empty() &&
            std::find(names.begin(), names.end(), gs) == names.end())
          names.push_back(gs);
      }
      for (const auto& name : names) {
        ExportedStat e;
        e.cell = &c;
        e.series = se.name;
        e.default_series = is_default;
        e.stat = name;
        for (const auto& [n, key] : kStats)
          if (n == name && stats) e.value_ns = integer_at(*stats, key);
        std::vector<std::string> verdicts;
        for (const json* g : c.gates) {
          const std::string gseries = text_of(*g, "series");
          if (text_of(*g, "stat") != name || !(gseries.empty() ? is_default : gseries == se.name)) continue;
          const std::string verdict = text_of(*g, "verdict");
          verdicts.push_back(verdict);
          e.gates.push_back(text_of(*g, "gate") + ": " + verdict);
          if (!e.value_ns) e.value_ns = integer_at(*g, "value_ns");
        }
        if (c.status != "measured")
          e.status = unmeasured_status(c);
        else
          e.status = gated_status(verdicts);
        if (e.status == "DONE" && !e.value_ns) e.status = "MISS";  // measured, but not this statistic
        std::string stat_segment = name;
        std::replace(stat_segment.begin(), stat_segment.end(), '.', '_');
        e.path = cell_prefix + (is_default ? "" : "." + name_segment(se.name)) + "." + name_segment(stat_segment);
        all.push_back(std::move(e));
      }
    }
  }
  return all;
}

json kcidb_document(const Run& run, const KcidbOptions& o) {
  const Run* first = run.runs().front();
  const json& run_json = first->stored ? first->stored->run : json();
  const std::string run_id = first->run_id;
  // The kernel of the first measured cell's host (the first host otherwise).
  json host_facts = json::object();
  for (const auto& c : run.cells)
    if (c.result && object_at(*c.result, "host_facts")) {
      host_facts = member(*c.result, "host_facts");
      break;
    }
  if (host_facts.empty())
    if (const json* hosts = object_at(run_json, "hosts"); hosts && !hosts->empty()) host_facts = hosts->begin().value();
  const std::string release = text_of(host_facts, "kernel_release");

  json checkout{{"id", with_origin(o.origin, o.checkout.empty() ? run_id : o.checkout)}, {"origin", o.origin}};
  if (!release.empty()) checkout["comment"] = "Linux " + release;
  if (!o.commit.empty()) checkout["git_commit_hash"] = o.commit;
  if (!run.started.empty()) checkout["start_time"] = run.started;
  checkout["valid"] = true;

  json build{{"id", with_origin(o.origin, o.build.empty() ? run_id : o.build)},
             {"checkout_id", checkout["id"]},
             {"origin", o.origin}};
  std::string arch;
  for (unsigned char ch : text_of(host_facts, "machine"))
    arch += (std::isalnum(ch) || ch == '_') && ch < 0x80 ? static_cast<char>(std::tolower(ch)) : '_';
  if (!arch.empty()) build["architecture"] = arch;
  if (!release.empty()) build["comment"] = "Linux " + release;
  // The kernel was built elsewhere: what is known of it is what runs.
  json build_misc = without_nulls(json{{"kernel_release", host_facts.value("kernel_release", json())},
                                       {"kernel_version", host_facts.value("kernel_version", json())},
                                       {"preempt_model", host_facts.value("preempt_model", json())}});
  json runs = json::array();
  for (const Run* r : run.runs()) runs.push_back(r->run_id);
  build_misc["vmlat_runs"] = runs;
  build_misc["vmlat_version"] = version_string;
  build["misc"] = build_misc;

  json tests = json::array();
  for (const auto& e : exported_stats(run)) {
    const Cell& c = *e.cell;
    json t{{"id", o.origin + ":" + c.run_id + "/" + c.id + "/" + e.series + "/" + e.stat},
           {"build_id", build["id"]},
           {"origin", o.origin},
           {"path", e.path},
           {"status", e.status}};
    if (e.value_ns && e.status != "SKIP" && e.status != "MISS")
      t["number"] = json{{"value", static_cast<double>(*e.value_ns) / 1e9}, {"unit", "s"}, {"prefix", "metric"}};
    json axes = json::object();
    for (const auto& [k, v] : c.axes) axes[k] = v;
    json env_misc{{"axes", axes}, {"cell", c.id}, {"run_id", c.run_id}, {"series", e.series}};
    if (!c.host.empty()) env_misc["host"] = c.host;
    if (c.result) {
      if (const json* hf = object_at(*c.result, "host_facts")) env_misc["host_facts"] = *hf;
      if (const json* f = object_at(*c.result, "facts")) env_misc["facts"] = *f;
      const json& timings = member(*c.result, "timings");
      if (timings.is_object() && member(timings, "started").is_string()) t["start_time"] = timings["started"];
      const json& measure_s = member(member(timings, "phases"), "measure_s");
      if (measure_s.is_number()) t["duration"] = measure_s;
    }
    t["environment"] = json{{"comment", c.host.empty() ? c.id : c.id + " on " + c.host}, {"misc", without_nulls(env_misc)}};
    json misc{{"cell_status", c.status}, {"value_ns", e.value_ns ? json(*e.value_ns) : json()}};
    if (!e.gates.empty()) misc["gates"] = e.gates;
    if (!c.error.empty()) misc["error"] = c.error;
    t["misc"] = without_nulls(misc);
    if (!c.error.empty()) t["log_excerpt"] = c.error.substr(0, 16384);
    // The histograms (result.json), the probe's and workload's files, the run's report.
    json files = json::array();
    std::set<std::string> names;
    // The run's own directory, not the "latest" link it may have been read through: that one moves.
    std::error_code canonical_error;
    fs::path run_dir = fs::weakly_canonical(c.stored ? fs::path(c.stored->dir) : fs::path("."), canonical_error);
    if (canonical_error) run_dir = c.stored ? fs::path(c.stored->dir) : fs::path(".");
    auto add = [&](const fs::path& file, std::string name) {
      std::error_code ec;
      if (!fs::is_regular_file(file, ec)) return;
      std::replace(name.begin(), name.end(), '/', '_');
      if (name.empty() || !names.insert(name).second) return;
      files.push_back(json{{"name", name}, {"url", file_url(file, run_dir, o.artifacts_url)}});
    };
    const fs::path dir = run_dir / "cells" / c.id;
    add(dir / "result.json", "result.json");
    add(dir / "cell.log", "cell.log");
    if (c.result)
      for (const auto& a : member(*c.result, "artifacts"))
        if (a.is_string()) {
          const std::string name = a.get<std::string>();
          if (name.find('/') == std::string::npos && name != ".." && name != ".") add(dir / name, name);
        }
    add(run_dir / "report.html", "report.html");
    if (!files.empty()) t["output_files"] = files;
    if (fs::exists(dir / "cell.log")) t["log_url"] = file_url(dir / "cell.log", run_dir, o.artifacts_url);
    tests.push_back(std::move(t));
  }
  return json{{"version", {{"major", 5}, {"minor", 0}}},
              {"checkouts", json::array({checkout})},
              {"builds", json::array({build})},
              {"tests", tests}};
}

std::string lava_lines(const Run& run, bool signals) {
  std::string out;
  for (const auto& e : exported_stats(run)) {
    // LAVA's results: pass, fail, skip, unknown. An infrastructure error
    // fails (vmlat exits non-zero for it too); not run is unknown.
    const std::string result = e.status == "FAIL" || e.status == "ERROR" ? "fail"
                               : e.status == "SKIP"                      ? "skip"
                               : e.status == "MISS"                      ? "unknown"
                                                                         : "pass";
    const bool measured = e.value_ns && (e.status == "PASS" || e.status == "FAIL" || e.status == "DONE");
    if (signals) {
      out += "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=" + e.path + " RESULT=" + result;
      if (measured) out += " UNITS=us MEASUREMENT=" + microseconds_text(*e.value_ns);
      out += ">\n";
    } else {
      out += "lava-test-case " + e.path + " --result " + result;
      if (measured) out += " --measurement " + microseconds_text(*e.value_ns) + " --units us";
      out += "\n";
    }
  }
  return out;
}

std::map<std::string, json> rt_tests_documents(const Run& run) {
  std::map<std::string, json> docs;
  for (const auto& c : run.cells) {
    if (!c.result || c.series.empty() || c.series.front().per_cpu.empty()) continue;
    const Series& s = c.series.front();
    struct Thread {
      int cpu;
      json histogram = json::object();
      std::uint64_t cycles = 0, bucketed = 0, max_bucket = 0;
      long long min_us = 0, max_us = 0;
      double avg_us = 0;
      bool any_bucket = false;
    };
    std::vector<Thread> threads;
    bool usable = true;
    for (const auto& [cpu_text, doc] : s.per_cpu) {
      const json& h = member(*doc, "histogram");
      const json& st = member(*doc, "stats");
      auto samples = integer_at(st, "samples");
      auto min_ns = integer_at(h, "min_ns");
      auto max_ns = integer_at(h, "max_ns");
      if (!samples || *samples <= 0 || !min_ns || !max_ns) continue;  // nothing measured on this CPU
      Thread t;
      try {
        t.cpu = std::stoi(cpu_text);
      } catch (const std::exception&) {
        usable = false;
        break;
      }
      t.cycles = static_cast<std::uint64_t>(*samples);
      t.min_us = *min_ns / 1000;
      t.max_us = *max_ns / 1000;
      for (const auto& b : member(h, "buckets")) {
        if (!b.is_array() || b.size() != 2 || !b[0].is_number_unsigned() || !b[1].is_number_unsigned()) continue;
        const auto bucket = b[0].get<std::uint64_t>(), count = b[1].get<std::uint64_t>();
        if (count == 0) continue;
        t.histogram[std::to_string(bucket)] = count;
        t.bucketed += count;
        t.max_bucket = std::max(t.max_bucket, bucket);
        t.any_bucket = true;
      }
      const auto mean = integer_at(st, "mean_ns");
      // cyclictest prints avg with two decimals, between its whole-microsecond min and max.
      double avg = mean ? std::round(static_cast<double>(*mean) / 10.0) / 100.0 : static_cast<double>(t.min_us);
      t.avg_us = std::clamp(avg, static_cast<double>(t.min_us), static_cast<double>(t.max_us));
      threads.push_back(std::move(t));
    }
    if (!usable || threads.empty()) continue;
    // One -h range for the document: the probe's, when every thread fits it
    // (buckets below it, overflowing threads' max at or above it); else the
    // smallest that does.
    std::uint64_t lowest = 1, highest = UINT64_MAX;
    for (const auto& t : threads) {
      if (t.any_bucket) lowest = std::max(lowest, t.max_bucket + 1);
      else lowest = std::max<std::uint64_t>(lowest, 1);
      if (t.cycles > t.bucketed) highest = std::min<std::uint64_t>(highest, static_cast<std::uint64_t>(t.max_us));
      if (!t.any_bucket) highest = std::min<std::uint64_t>(highest, static_cast<std::uint64_t>(t.min_us));
    }
    if (lowest > highest) continue;  // no cyclictest run could have written these histograms
    std::uint64_t range = lowest;
    const json& probe_facts = member(member(*c.result, "facts"), "probe");
    if (auto r = integer_at(probe_facts, "histogram_range_us"); r && *r > 0 &&
        static_cast<std::uint64_t>(*r) >= lowest && static_cast<std::uint64_t>(*r) <= highest)
      range = static_cast<std::uint64_t>(*r);

    json thread_map = json::object();
    int n = 0;
    for (const auto& t : threads)
      thread_map[std::to_string(n++)] = json{{"histogram", t.histogram}, {"cycles", t.cycles}, {"min", t.min_us},
                                             {"max", t.max_us},          {"avg", t.avg_us},    {"cpu", t.cpu},
                                             {"node", 0}};
    const json& cell_json = member(*c.result, "cell");
    const auto period_ns = integer_at(cell_json, "period_ns");
    std::string cmdline = "vmlat export --format rt-tests (cell " + c.id + "):";
    if (period_ns) cmdline += " -i " + std::to_string(*period_ns / 1000);
    cmdline += " -t " + std::to_string(threads.size()) + " -h " + std::to_string(range);
    // The facts of the system measured: a guest's own when the backend recorded them.
    json system = member(member(member(member(*c.result, "facts"), "backend"), "guest"), "system");
    if (!system.is_object()) system = member(*c.result, "host_facts");
    const json& timings = member(*c.result, "timings");
    json doc{{"file_version", 1},
             {"cmdline:", cmdline},
             {"rt_test_version:", std::string("vmlat ") + version_string},
             {"start_time", rfc2822(text_of(timings, "started"))},
             {"end_time", rfc2822(text_of(timings, "finished"))},
             {"return_code", 0},
             {"sysinfo",
              {{"sysname", "Linux"},
               {"nodename", text_of(system, "hostname")},
               {"release", text_of(system, "kernel_release")},
               {"version", text_of(system, "kernel_version")},
               {"machine", text_of(system, "machine")},
               {"realtime", member(system, "preempt_rt").is_boolean() && system["preempt_rt"].get<bool>() ? 1 : 0}}},
             {"num_threads", threads.size()},
             {"resolution_in_ns", 0},
             {"thread", thread_map},
             {"vmlat", {{"run_id", c.run_id}, {"cell", c.id}, {"series", s.name}, {"histogram_range_us", range}}}};
    std::string name = name_segment(c.id);
    if (run.merged()) name = name_segment(c.run_id) + "." + name;
    while (docs.count(name + ".json")) name += "_";
    docs[name + ".json"] = std::move(doc);
  }
  return docs;
}

int export_command(const ExportCommand& cmd, std::ostream& out, std::ostream& err) {
  static const std::set<std::string> formats{"kcidb", "lava", "lava-signal", "rt-tests"};
  if (!formats.count(cmd.format)) {
    err << "vmlat: export: --format must be kcidb, lava, lava-signal or rt-tests" << (cmd.format.empty() ? "" : " (got '" + cmd.format + "')")
        << "\n";
    return exit_code::usage;
  }
  if (cmd.runs.empty()) {
    err << "vmlat: export: missing RUN_DIR\n";
    return exit_code::usage;
  }
  // KCIDB: "[a-z0-9_]+" for origins.
  if (cmd.kcidb_origin.empty() ||
      std::any_of(cmd.kcidb_origin.begin(), cmd.kcidb_origin.end(),
                  [](char ch) { return !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'); })) {
    err << "vmlat: export: --kcidb-origin must be lower-case letters, digits and '_' (KCIDB's origin names)\n";
    return exit_code::usage;
  }
  if (!cmd.kcidb_commit.empty() &&
      (cmd.kcidb_commit.size() != 40 || cmd.kcidb_commit.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    err << "vmlat: export: --kcidb-commit must be a full git commit hash (40 lower-case hex digits)\n";
    return exit_code::usage;
  }
  if (cmd.format == "rt-tests" && (cmd.output.empty() || cmd.output == "-")) {
    err << "vmlat: export: rt-tests writes one file per cell: give --output DIR\n";
    return exit_code::usage;
  }
  auto stored = load_runs(cmd.runs, "export", err);
  if (!stored) return exit_code::usage;
  std::vector<Run> runs;
  for (const auto& s : *stored) runs.push_back(make_run(s));
  Run run = merge_runs(runs);

  if (cmd.format == "rt-tests") {
    auto docs = rt_tests_documents(run);
    try {
      fs::create_directories(cmd.output);
      for (const auto& [name, doc] : docs) write_file_atomic(fs::path(cmd.output) / name, doc.dump(2) + "\n");
    } catch (const std::exception& e) {
      return write_failed(cmd.output, e, err);
    }
    out << "rt-tests: " << docs.size() << " file" << (docs.size() == 1 ? "" : "s") << " in " << cmd.output << "\n";
    return exit_code::pass;
  }
  std::string text;
  if (cmd.format == "kcidb") {
    KcidbOptions o;
    o.origin = cmd.kcidb_origin;
    o.checkout = cmd.kcidb_checkout;
    o.build = cmd.kcidb_build;
    o.commit = cmd.kcidb_commit;
    o.artifacts_url = cmd.artifacts_url;
    text = kcidb_document(run, o).dump(2) + "\n";
  } else {
    text = lava_lines(run, cmd.format == "lava-signal");
  }
  if (cmd.output.empty() || cmd.output == "-") {
    out << text;
    out.flush();
    if (!out) {
      err << "vmlat: export: cannot write to standard output\n";
      return exit_code::export_failed;
    }
    return exit_code::pass;
  }
  try {
    write_file_atomic(cmd.output, text);
  } catch (const std::exception& e) {
    return write_failed(cmd.output, e, err);
  }
  return exit_code::pass;
}

}  // namespace vmlat::report
