#include "commands.hpp"

#include <filesystem>
#include <optional>
#include <ostream>

#include "report.hpp"
#include "run_store.hpp"
#include "session.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/exit_codes.hpp"

namespace vmlat::report {

namespace {

std::optional<StoredRun> load(const std::string& dir, const char* what, std::ostream& err) {
  try {
    return load_run_dir(dir);
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

}  // namespace

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
  auto base_stored = load(c.base, "BASE_RUN", err);
  if (!base_stored) return exit_code::usage;
  auto new_stored = load(c.now, "NEW_RUN", err);
  if (!new_stored) return exit_code::usage;
  Run base = make_run(*base_stored), now = make_run(*new_stored);
  Comparison comparison = compare_runs(base, now, options);
  std::string text = c.format == "text"       ? compare_text(comparison)
                     : c.format == "markdown" ? compare_markdown(comparison)
                                              : compare_json(comparison).dump(2) + "\n";
  int code = emit(text, c.output, out, err);
  if (code) return code;
  return comparison.exit_code();
}

}  // namespace vmlat::report
