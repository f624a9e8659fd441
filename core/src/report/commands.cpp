#include "commands.hpp"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <set>

#include "history.hpp"
#include "json_access.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "session.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/exit_codes.hpp"

namespace vmlat::report {

namespace {

std::optional<StoredRun> load(const std::string& dir, const char* what, std::ostream& err, const CellContent& content = {}) {
  try {
    return load_run_dir(dir, content);
  } catch (const std::exception& e) {
    err << "vmlat: " << what << ": " << e.what() << "\n";
    return std::nullopt;
  }
}

// "" or "-": stdout; else an atomic write.
int emit(const std::string& content, const std::string& path, std::ostream& out, std::ostream& err) {
  if (path.empty() || path == "-") {
    out << content;
    return exit_code::pass;
  }
  try {
    write_file_atomic(path, content);
  } catch (const std::exception& e) {
    err << "vmlat: cannot write " << path << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  return exit_code::pass;
}

std::string canonical_or_self(const std::string& dir) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(dir, ec);
  return ec ? dir : c.string();
}

// The baseline's runs: each BASE is a run directory (run.json) or a results
// directory, whose complete runs of NEW's plan that started no later than
// NEW (NEW itself left out) all count. Oldest first, each run once; nullopt
// after saying why on `err`.
std::optional<std::deque<StoredRun>> load_history(const CompareCommand& c, const StoredRun& now, const CellContent& content,
                                                  std::ostream& err) {
  const std::string plan = now.run.contains("plan") && now.run["plan"].is_object() ? now.run["plan"].value("name", std::string()) : "";
  const std::string started = now.run.value("started", std::string());
  std::deque<StoredRun> runs;
  std::set<std::string> seen;
  for (const auto& base : c.bases) {
    try {
      for (auto& r : load_baseline_runs(base, plan, started, now.dir, content))
        if (seen.insert(canonical_or_self(r.dir)).second) runs.push_back(std::move(r));
    } catch (const std::exception& e) {
      err << "vmlat: BASE: " << e.what() << "\n";
      return std::nullopt;
    }
  }
  std::stable_sort(runs.begin(), runs.end(), [](const StoredRun& a, const StoredRun& b) {
    return std::pair(a.run.value("started", std::string()), a.dir) < std::pair(b.run.value("started", std::string()), b.dir);
  });
  if (c.last > 0)
    while (runs.size() > c.last) runs.pop_front();
  return runs;
}

// The cells of the history whose facts a comparison shows, read again
// with their facts (the rest of each document is the same summary).
bool read_facts(std::deque<StoredRun>& runs, const std::vector<std::pair<std::size_t, std::string>>& sources,
                const CellContent& content, std::ostream& err) {
  std::map<std::size_t, StoredRun> partial;  // per run: a run of those cells only
  for (const auto& [k, id] : sources) {
    StoredRun& p = partial[k];
    if (p.dir.empty()) {
      p.dir = runs[k].dir;
      p.run = json{{"cells", json::array()}};
    }
    p.run["cells"].push_back(json{{"id", id}});
  }
  std::vector<StoredRun*> list;
  for (auto& [k, p] : partial) list.push_back(&p);
  const auto errors = load_run_cells(list, content);
  std::size_t i = 0;
  for (auto& [k, p] : partial) {
    if (!errors[i++].empty()) {
      err << "vmlat: BASE: " << errors[i - 1] << "\n";  // read a moment ago: changed since
      return false;
    }
    std::map<std::string, json*> by_id;  // the run's documents by their cell id, the first of each
    for (auto& cell : runs[k].cells) by_id.emplace(text_of(member(cell, "cell"), "id"), &cell);
    for (auto& doc : p.cells)
      if (auto it = by_id.find(text_of(member(doc, "cell"), "id")); it != by_id.end()) *it->second = std::move(doc);
  }
  return true;
}

}  // namespace

std::optional<std::vector<StoredRun>> load_runs(const std::vector<std::string>& dirs, const char* what, std::ostream& err) {
  std::vector<StoredRun> all;
  all.reserve(dirs.size());
  for (const auto& dir : dirs) {
    auto one = load(dir, what, err);
    if (!one) return std::nullopt;
    all.push_back(std::move(*one));
  }
  return all;
}

int report_command(const ReportCommand& c, std::ostream& out, std::ostream& err) {
  if (c.format != "html" && c.format != "markdown" && c.format != "json") {
    err << "vmlat: --format must be html, markdown or json (got '" << c.format << "')\n";
    return exit_code::usage;
  }
  if (!c.more_runs.empty() && !c.baseline.empty()) {
    err << "vmlat: --baseline compares one run: give one RUN_DIR with it\n";
    return exit_code::usage;
  }
  if (is_session_dir(c.run_dir) && c.more_runs.empty()) return session_report_command(c, out, err);  // vmlat monitor's
  // Every run is read before the model points into it: the vector is not resized after.
  std::vector<std::string> dirs{c.run_dir};
  dirs.insert(dirs.end(), c.more_runs.begin(), c.more_runs.end());
  std::vector<StoredRun> all;
  all.reserve(dirs.size());
  for (const auto& dir : dirs) {
    if (dirs.size() > 1 && is_session_dir(dir)) {
      err << "vmlat: report: " << dir << " is a monitor session; it cannot be merged with runs\n";
      return exit_code::usage;
    }
    auto one = load(dir, "report", err);
    if (!one) return exit_code::usage;
    all.push_back(std::move(*one));
  }
  const StoredRun* stored = &all.front();
  std::optional<StoredRun> base_stored;
  if (!c.baseline.empty()) {
    base_stored = load(c.baseline, "--baseline", err);
    if (!base_stored) return exit_code::usage;
  }
  std::vector<Run> runs;
  for (const auto& one : all) runs.push_back(make_run(one));
  Run run = merge_runs(runs);
  std::optional<Run> base;
  std::optional<Comparison> comparison;
  if (base_stored) {
    base = make_run(*base_stored);
    comparison = compare_runs(*base, run, CompareOptions{});
  }
  ReportInput in;
  in.run = &run;
  in.baseline = base ? &*base : nullptr;
  in.comparison = comparison ? &*comparison : nullptr;
  std::string output = c.output;
  if (c.format == "html") {
    if (output.empty()) output = (std::filesystem::path(stored->dir) / "report.html").string();
    std::error_code ec;
    // A merged page links each cell's files relative to its own run: right in none of them but the first.
    in.link_artifacts = !run.merged() && output != "-" && std::filesystem::weakly_canonical(std::filesystem::absolute(output).parent_path(), ec) ==
                                             std::filesystem::weakly_canonical(stored->dir, ec);
    int code = emit(render_html(in), output, out, err);
    if (code == 0 && output != "-") out << "report: " << output << "\n";
    return code;
  }
  if (c.format == "markdown") return emit(render_markdown(in), output, out, err);
  return emit(render_json(in).dump(2) + "\n", output, out, err);
}

int compare_command(const CompareCommand& c, std::ostream& out, std::ostream& err) {
  if (c.format != "text" && c.format != "markdown" && c.format != "json") {
    err << "vmlat: --format must be text, markdown or json (got '" << c.format << "')\n";
    return exit_code::usage;
  }
  CompareOptions options;
  for (const auto& t : c.tolerances) {
    std::string stat, value = t;
    if (auto eq = t.find('='); eq != std::string::npos) {
      stat = t.substr(0, eq);
      value = t.substr(eq + 1);
    }
    std::string why;
    auto tolerance = parse_tolerance(value, &why);
    if (!tolerance) {
      err << "vmlat: --tolerance " << t << ": " << why << "\n";
      return exit_code::usage;
    }
    if (stat.empty()) {
      options.tolerance = *tolerance;
      continue;
    }
    bool known = false;
    for (const auto& s : options.stats) known = known || s.name == stat;
    if (!known) {
      err << "vmlat: --tolerance " << t << ": compare reports p50, p99, p99.9 and max; '" << stat << "' is none of them\n";
      return exit_code::usage;
    }
    options.per_stat[stat] = *tolerance;
  }
  if (!(c.confidence > 0 && c.confidence < 1)) {
    err << "vmlat: --confidence must be between 0 and 1, e.g. 0.99\n";
    return exit_code::usage;
  }
  options.confidence = c.confidence;
  // Only what the comparison reads: histograms and per-CPU series are most
  // of a result.json and are never built, nor the facts of earlier runs
  // but those the comparison shows (docs/report.md, "Performance").
  const CellContent content = content_for(options.stats);
  auto new_stored = load(c.now, "NEW_RUN", err, content);
  if (!new_stored) return exit_code::usage;
  CellContent without_facts = content;
  without_facts.facts = false;
  auto history_stored = load_history(c, *new_stored, without_facts, err);
  if (!history_stored) return exit_code::usage;
  std::deque<Run> history_runs;
  std::vector<const Run*> history;
  auto build = [&] {
    history_runs.clear();
    history.clear();
    for (const auto& r : *history_stored) history.push_back(&history_runs.emplace_back(make_run(r)));
  };
  Run now = make_run(*new_stored);
  build();
  if (!read_facts(*history_stored, fact_sources(history, now), content, err)) return exit_code::usage;
  build();  // the runs point into the documents just read again
  Comparison comparison = compare_runs(history, now, options);
  std::string text = c.format == "text"       ? compare_text(comparison)
                     : c.format == "markdown" ? compare_markdown(comparison)
                                              : compare_json(comparison).dump(2) + "\n";
  int code = emit(text, c.output, out, err);
  if (code) return code;
  return comparison.exit_code();
}

}  // namespace vmlat::report

namespace vmlat::report {

std::optional<History> read_history(const HistoryCommand& c, std::ostream& err) {
  std::string plan = c.plan;
  if (plan.empty()) {
    // The newest run's plan (its "latest"), else any.
    try {
      StoredRun latest = load_run_head(c.results_dir);  // its run.json names the plan
      if (latest.run.contains("plan") && latest.run["plan"].is_object()) plan = latest.run["plan"].value("name", std::string());
    } catch (const std::exception&) {
    }
  }
  std::vector<StoredRun> runs;
  try {
    runs = load_baseline_runs(c.results_dir, plan, "", "", content_for(history_statistics()));
  } catch (const std::exception& e) {
    err << "vmlat: history: " << e.what() << "\n";
    return std::nullopt;
  }
  if (c.last > 0 && runs.size() > c.last) runs.erase(runs.begin(), runs.end() - static_cast<std::ptrdiff_t>(c.last));
  return build_history(runs, c.results_dir, c.confidence);
}

int write_history(const HistoryCommand& c, const History& h, std::ostream& out, std::ostream& err) {
  const std::string text = c.format == "text"       ? history_text(h)
                           : c.format == "markdown" ? history_markdown(h)
                           : c.format == "html"     ? history_html(h)
                                                    : history_json(h).dump(2) + "\n";
  return write_output(text, c.output, out, err);
}

int write_output(const std::string& content, const std::string& path, std::ostream& out, std::ostream& err) {
  return emit(content, path, out, err);
}

}  // namespace vmlat::report
