#include "gate.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>

#include "commands.hpp"
#include "json_access.hpp"
#include "junit.hpp"
#include "model.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/json.hpp"

namespace vmlat::report {

namespace {

// The cells a run stands for, with the host of each: a fan-out job's
// share.json (every cell of the plan's selection, the host of its share),
// else the run's own cells (a run of the whole plan lists every cell).
struct PlanCells {
  std::vector<std::pair<std::string, std::string>> cells;  // id, host
  bool from_share = false;
};

std::optional<PlanCells> plan_cells_of(const StoredRun& r, const std::string& sha, std::ostream& err) {
  PlanCells p;
  const json& share = member(r.run, "share");
  if (share.is_object()) {
    // Only the one name vmlat writes: a run.json never leads the reader elsewhere.
    if (text_of(share, "file") != "share.json") {
      err << "vmlat: gate: " << r.dir << "/run.json: share.file must be \"share.json\"\n";
      return std::nullopt;
    }
    json doc;
    try {
      std::ifstream in(std::filesystem::path(r.dir) / "share.json");
      if (!in) throw std::runtime_error("cannot be read");
      doc = json::parse(in);
    } catch (const std::exception& e) {
      err << "vmlat: gate: " << r.dir << "/share.json: " << e.what() << " (a run of --host keeps the plan's cells there)\n";
      return std::nullopt;
    }
    if (text_of(doc, "schema") != "vmlat-share/1" || text_of(doc, "plan_sha256") != sha || !member(doc, "cells").is_array()) {
      err << "vmlat: gate: " << r.dir << "/share.json is not this run's share (schema vmlat-share/1, the plan's sha256)\n";
      return std::nullopt;
    }
    for (const auto& c : doc["cells"]) p.cells.emplace_back(text_of(c, "id"), text_of(c, "host"));
    p.from_share = true;
    return p;
  }
  for (const auto& c : member(r.run, "cells")) p.cells.emplace_back(text_of(c, "id"), text_of(c, "host"));
  return p;
}

std::string short_sha(const std::string& sha) { return sha.substr(0, 12); }

std::string plural(std::size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

}  // namespace

int gate_command(const GateCommand& c, std::ostream& out, std::ostream& err) {
  if (c.runs.empty()) {
    err << "vmlat: gate needs the run directories of the plan's jobs (RUN_DIR...)\n";
    return exit_code::usage;
  }
  auto loaded = load_runs(c.runs, "gate", err);
  if (!loaded) return exit_code::usage;
  const std::vector<StoredRun>& stored = *loaded;  // the model points into these
  // One plan: byte for byte, the same selection of its cells, the same cut.
  const std::string sha = text_of(member(stored.front().run, "plan"), "sha256");
  const std::string plan_name = text_of(member(stored.front().run, "plan"), "name");
  for (const auto& r : stored)
    if (text_of(member(r.run, "plan"), "sha256") != sha || sha.empty()) {
      err << "vmlat: gate: the runs are not of one plan:\n";
      for (const auto& s : stored)
        err << "  " << s.dir << ": plan " << text_of(member(s.run, "plan"), "name") << ", sha256 "
            << short_sha(text_of(member(s.run, "plan"), "sha256")) << "...\n";
      return exit_code::usage;
    }
  std::vector<PlanCells> lists;
  for (const auto& r : stored) {
    auto p = plan_cells_of(r, sha, err);
    if (!p) return exit_code::usage;
    lists.push_back(std::move(*p));
  }
  // The reference: a share if there is one (its hosts are the static cut).
  std::size_t ref = 0;
  for (std::size_t i = 0; i < lists.size(); ++i)
    if (lists[i].from_share) {
      ref = i;
      break;
    }
  std::map<std::string, std::string> host_of;
  for (const auto& [id, host] : lists[ref].cells) host_of[id] = host;
  for (std::size_t i = 0; i < lists.size(); ++i) {
    std::set<std::string> ids;
    for (const auto& [id, host] : lists[i].cells) {
      ids.insert(id);
      auto it = host_of.find(id);
      const bool same_host = it != host_of.end() && (it->second == host || !lists[i].from_share);
      if (!same_host) {
        err << "vmlat: gate: " << stored[i].dir << " and " << stored[ref].dir << " cut plan " << plan_name << " differently: cell "
            << id << (it == host_of.end() ? " is in one only" : " is in the share of " + host + " in one, of " + it->second + " in the other")
            << " (another --only, --inventory or vmlat version?)\n";
        return exit_code::usage;
      }
    }
    if (ids.size() != host_of.size()) {
      err << "vmlat: gate: " << stored[i].dir << " and " << stored[ref].dir << " select different cells of plan " << plan_name << " ("
          << ids.size() << " and " << host_of.size() << ": another --only?)\n";
      return exit_code::usage;
    }
  }

  std::vector<Run> runs;
  for (const auto& s : stored) runs.push_back(make_run(s));
  Run merged = merge_runs(runs);

  std::map<std::string, std::vector<const Cell*>> found;
  for (const auto& cell : merged.cells) found[cell.id].push_back(&cell);
  std::vector<std::string> failing, missing, errors;
  std::size_t measured = 0, skipped = 0;
  std::vector<json> results;  // for JUnit: each cell's document, a stand-in for one in no run
  for (const auto& [id, host] : lists[ref].cells) {
    const auto it = found.find(id);
    if (it == found.end()) {
      missing.push_back(id + " on " + host + ": in no run (" + host + "'s job did not run, or its run directory was not given)");
      results.push_back(json{{"cell", {{"id", id}, {"host", host}}}, {"status", "not-run"},
                             {"error", "in no run given to vmlat gate (" + host + "'s job)"}});
      continue;
    }
    bool any_measured = false, any_skipped = false;
    std::string why_not;
    for (const Cell* cell : it->second) {
      if (cell->result) results.push_back(*cell->result);
      const std::string where = id + " on " + (cell->host.empty() ? host : cell->host) + " (run " + cell->run_id + ")";
      if (cell->status == "skipped") any_skipped = true;
      if (!cell->measured()) {
        if (why_not.empty()) why_not = where + ": " + (cell->status.empty() ? "no status" : cell->status) +
                                       (cell->error.empty() ? "" : ": " + cell->error);
        continue;
      }
      any_measured = true;
      std::string failed, not_evaluated;
      for (const json* g : cell->gates) {
        const std::string v = text_of(*g, "verdict");
        const std::string line = text_of(*g, "gate") + ": " + text_of(*g, "message");
        if (v == "fail") failed += (failed.empty() ? "" : "; ") + line;
        else if (v == "error") not_evaluated += (not_evaluated.empty() ? "" : "; ") + line;
      }
      if (!failed.empty()) failing.push_back(where + ": " + failed);
      if (!not_evaluated.empty()) errors.push_back(where + ": gate not evaluated: " + not_evaluated);
    }
    if (any_measured) ++measured;
    else if (any_skipped) ++skipped;  // not runnable there, as a run of the whole plan says
    else missing.push_back(why_not);
    if (!any_measured && !it->second.front()->result)
      results.push_back(json{{"cell", {{"id", id}, {"host", host}}}, {"status", it->second.front()->status},
                             {"error", it->second.front()->error}});
  }
  std::vector<std::string> claims;
  for (const auto& e : merged.claims)
    if (e.failed()) claims.push_back(e.spec.name + ": " + e.reason);
  std::vector<std::string> failed_runs;  // judged a failure by the run itself, e.g. [plan] flaky = "fail"
  for (const auto& r : runs)
    if (r.exit_code == exit_code::gate_failed && failing.empty() && claims.empty())
      failed_runs.push_back(r.run_id + " exited 1 (a flaky gate with [plan] flaky = \"fail\", or a claim over its cells)");

  int code = exit_code::pass;
  std::string word = "PASS";
  if (!failing.empty() || !claims.empty() || !failed_runs.empty()) code = exit_code::gate_failed, word = "FAIL";
  else if (!missing.empty() || !errors.empty()) code = exit_code::infra, word = "NOT MEASURED";
  std::string detail = plural(lists[ref].cells.size(), "cell") + " of plan " + plan_name + " (sha256 " + short_sha(sha) +
                       "...) in " + plural(stored.size(), "run") + ": " + std::to_string(measured) + " measured";
  if (skipped) detail += ", " + std::to_string(skipped) + " not runnable there";
  if (!failing.empty()) detail += ", " + std::to_string(failing.size()) + " failing";
  if (!missing.empty()) detail += ", " + std::to_string(missing.size()) + " not measured";
  if (!errors.empty()) detail += ", " + plural(errors.size(), "gate") + " not evaluated";
  if (!claims.empty()) detail += ", " + plural(claims.size(), "gating claim") + " violated";

  std::vector<std::pair<std::string, std::string>> lines;  // (label, text): failures first
  for (const auto& l : failing) lines.emplace_back("FAIL", l);
  for (const auto& l : claims) lines.emplace_back("FAIL", "claim " + l);
  for (const auto& l : failed_runs) lines.emplace_back("FAIL", "run " + l);
  for (const auto& l : missing) lines.emplace_back("NOT MEASURED", l);
  for (const auto& l : errors) lines.emplace_back("NOT MEASURED", l);
  for (const auto& [label, text] : lines) out << label << "  " << text << "\n";
  const std::string verdict = "vmlat gate: " + word + " (exit " + std::to_string(code) + "): " + detail;
  out << verdict << "\n";

  int written = exit_code::pass;
  if (!c.junit.empty()) {
    json run{{"run_id", merged.run_id}, {"started", merged.started}, {"plan", {{"sha256", sha}}}, {"expects", json::array()}};
    for (const auto& e : merged.claims) run["expects"].push_back(expect_json(e));
    written = std::max(written, write_output(junit_xml(plan_name, run, results), c.junit, out, err));
  }
  if (!c.markdown.empty()) {
    std::string md = "## " + verdict + "\n\n";
    for (const auto& [label, text] : lines) md += "- **" + label + "** " + text + "\n";
    ReportInput in;
    in.run = &merged;
    in.link_artifacts = false;
    md += (lines.empty() ? "" : "\n") + render_markdown(in);
    written = std::max(written, write_output(md, c.markdown, out, err));
  }
  // An output that cannot be written never hides a verdict: only a pass becomes 3.
  return code == exit_code::pass ? written : code;
}

}  // namespace vmlat::report
