// The commands of app.hpp: a plan loaded and validated, plugins found, the
// run, the monitor, the exporters and the report called.
#include "app.hpp"

#include <algorithm>
#include <cmath>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <ostream>

#include "export/metrics.hpp"
#include "export/push.hpp"
#include "loader.hpp"
#include "monitor/monitor.hpp"
#include "plan.hpp"
#include "stats/tail.hpp"
#include "report/commands.hpp"
#include "report/export.hpp"
#include "report/gate.hpp"
#include "run/run.hpp"
#include "run_store.hpp"
#include "vmlat/process.hpp"
#include "vmlat/units.hpp"

namespace vmlat::app {

namespace {

// The plan, validated with the plugins of `dirs`; nullopt after printing
// every error (as file:line:col) on `err`.
std::optional<Plan> load_valid(const std::string& path, PluginRegistry& registry, std::ostream& err) {
  Diagnostics diags;
  Plan plan = load_plan(path, diags, &registry);
  if (!diags.empty()) {
    err << diags.str();
    err << path << ": " << diags.all().size() << " error" << (diags.all().size() == 1 ? "" : "s") << "\n";
    return std::nullopt;
  }
  return plan;
}

std::optional<StoredRun> load_stored(const std::string& dir, std::ostream& err) {
  try {
    return load_run_dir(dir);
  } catch (const std::exception& e) {
    err << "vmlat: " << e.what() << "\n";
    return std::nullopt;
  }
}

std::optional<exporter::PushOptions> push_options(const MetricsExport& m) {
  if (m.push_url.empty()) return std::nullopt;
  exporter::PushOptions push;
  push.url = m.push_url;
  if (m.push_timeout) {
    push.budget = *m.push_timeout;
    push.attempt_timeout = std::min(push.attempt_timeout, *m.push_timeout);
  }
  return push;
}

}  // namespace

int list_plugins(const Dirs& plugin_dirs, std::ostream& out) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  if (registry.all().empty()) {
    out << "no plugins found; searched:";
    for (const auto& d : registry.dirs()) out << " " << d.string();
    out << "\n";
    return exit_code::pass;
  }
  std::size_t wn = 4, wk = 4, wv = 7;
  for (const auto& p : registry.all()) {
    wn = std::max(wn, p.name.size());
    wk = std::max(wk, p.kind.size());
    wv = std::max(wv, p.version.size());
  }
  auto pad = [](std::string s, std::size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  out << pad("NAME", wn) << "  " << pad("KIND", wk) << "  " << pad("VERSION", wv) << "  ABI  FILE\n";
  for (const auto& p : registry.all()) {
    out << pad(p.name, wn) << "  " << pad(p.kind.empty() ? "-" : p.kind, wk) << "  "
        << pad(p.version.empty() ? "-" : p.version, wv) << "  " << pad(p.abi ? std::to_string(p.abi) : "-", 3) << "  "
        << p.file.string() << "\n";
    if (!p.refused.empty()) out << "  ^ " << p.refused << "\n";
    else if (!p.summary.empty()) out << "  " << p.summary << "\n";
  }
  return exit_code::pass;
}

int validate(const std::string& path, const Dirs& plugin_dirs, std::ostream& out, std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  out << path << ": valid, " << expand(*plan).size() << " cells\n";
  return exit_code::pass;
}

int show_plan(const std::string& path, const Dirs& plugin_dirs, bool as_json, std::ostream& out, std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  auto cells = expand(*plan);
  if (as_json) {
    json list = json::array();
    for (const auto& c : cells) {
      json axes = json::object();
      for (const auto& [k, v] : c.spec.axes) axes[k] = v;
      json gates = json::array();
      for (const auto& g : plan->gates)
        if (g.matches(c.spec)) gates.push_back(g.name);
      list.push_back(json{{"index", c.index}, {"id", c.spec.id}, {"axes", axes}, {"gates", gates}});
    }
    out << dump_json(list, 2) << "\n";
    return exit_code::pass;
  }
  out << "plan " << plan->name << ": " << cells.size() << " cell" << (cells.size() == 1 ? "" : "s") << ", "
      << format_duration(plan->duration) << " each";
  if (!plan->description.empty()) out << " (" << plan->description << ")";
  out << "\n";
  for (const auto& c : cells) {
    out << "  " << c.index << ". " << c.spec.id << "\n     ";
    for (const auto& [k, v] : c.spec.axes) out << " " << k << "=" << v;
    std::string gates;
    for (const auto& g : plan->gates)
      if (g.matches(c.spec)) gates += (gates.empty() ? "" : ", ") + g.name;
    if (!gates.empty()) out << "\n      gates: " << gates;
    out << "\n";
  }
  // How long to run (docs/statistics.md): what a passing cell of this
  // length shows about a max or return-level bound, and the length that
  // would show it is exceeded less than once an hour.
  const double cell_s = std::chrono::duration<double>(plan->duration).count();
  for (const auto& g : plan->gates) {
    if (g.regression || !(g.stat == "max" || g.horizon_s > 0) || g.bound.count() <= 0 || cell_s <= 0) continue;
    const double per_hour = std::log(1 / (1 - g.confidence)) / (cell_s / 3600);
    char rate[32], hours[32], level[32];
    std::snprintf(rate, sizeof rate, "%.3g", per_hour);
    std::snprintf(hours, sizeof hours, "%.3g", stats::run_length_for_rate(1.0, g.confidence) / 3600);
    std::snprintf(level, sizeof level, "%g%%", 100 * g.confidence);
    out << "how long to run, gate " << g.name << ": a " << format_duration(plan->duration) << " cell that stays within "
        << format_duration(g.bound) << " shows at " << level << " only that " << g.stat << " exceeds it less than " << rate
        << " times per hour; less than once per hour takes " << hours << " h without exceeding it\n";
  }
  return exit_code::pass;
}

int run(const std::string& path, const Dirs& plugin_dirs, RunOptions options, MetricsExport metrics, std::ostream& out,
        std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  // Exporters: the plan's [export.prometheus], overridden by the command line.
  std::optional<exporter::PushOptions> push = push_options(metrics);
  if (!push && !plan->prometheus.push.empty()) {
    push = exporter::PushOptions{};
    push->url = plan->prometheus.push;
    push->budget = std::chrono::duration_cast<std::chrono::milliseconds>(plan->prometheus.push_timeout);
    push->attempt_timeout = std::min(push->attempt_timeout, push->budget);
  }
  if (push && !plan->prometheus.job.empty()) push->job = plan->prometheus.job;
  if (!metrics.textfile_dir && !plan->prometheus.textfile.empty())
    metrics.textfile_dir = std::filesystem::path(plan->prometheus.textfile);
  auto exporter = std::make_shared<exporter::RunExporter>(push, metrics.textfile_dir, err);
  if (exporter->enabled()) {
    options.on_cell_done = [exporter](const json& run, const json& cell, const std::filesystem::path&) {
      exporter->cell_done(run, cell);
    };
    options.on_run_done = [exporter](int code, const json& run, const std::vector<json>& cells,
                                     const std::filesystem::path& dir) { return exporter->run_done(code, run, cells, dir.string()); };
  }
  return run_plan(*plan, registry, options, out, err);
}

int run_cell(const std::string& path, const Dirs& plugin_dirs, const CellRunOptions& options, std::ostream& out,
             std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  return run_single_cell(*plan, registry, options, out, err);
}

int hosts(const std::string& path, const Dirs& plugin_dirs, const std::optional<std::filesystem::path>& inventory,
          bool as_json, std::ostream& out, std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  return list_hosts(*plan, inventory, as_json, out, err);
}

int provision(const std::string& path, const Dirs& plugin_dirs, const RunOptions& options, std::ostream& out,
              std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  return provision_hosts(*plan, options, out, err);
}

int monitor(const std::string& path, const Dirs& plugin_dirs, const MonitorOptions& options, std::ostream& out,
            std::ostream& err) {
  PluginRegistry registry(PluginRegistry::search_dirs(plugin_dirs));
  auto plan = load_valid(path, registry, err);
  if (!plan) return exit_code::usage;
  return run_monitor(*plan, registry, options, out, err);
}

int push(const std::string& run_dir, const MetricsExport& metrics, std::ostream& out, std::ostream& err) {
  auto stored = load_stored(run_dir, err);
  if (!stored) return exit_code::usage;
  if (stored->cells.empty()) {
    err << "vmlat: " << stored->dir << " has no cell results to push\n";
    return exit_code::usage;
  }
  const auto push = push_options(metrics);
  exporter::RunExporter exporter(push, metrics.textfile_dir, err);
  // Replays as the end of a live run; the run's own exit code is not ours.
  int code = exporter.run_done(exit_code::pass, stored->run, stored->cells, stored->dir);
  if (code == exit_code::pass && push)
    out << "pushed " << stored->cells.size() << " cell" << (stored->cells.size() == 1 ? "" : "s") << " of "
        << stored->run.value("run_id", stored->dir) << " to " << push->url << "\n";
  return code;
}

int metrics(const std::string& run_dir, std::ostream& out, std::ostream& err) {
  auto stored = load_stored(run_dir, err);
  if (!stored) return exit_code::usage;
  exporter::MetricSet set;
  for (const auto& c : stored->cells) exporter::add_cell_metrics(set, stored->run, c);
  out << exporter::to_text(set.families());
  return exit_code::pass;
}

int report(const report::ReportCommand& command, std::ostream& out, std::ostream& err) {
  return report::report_command(command, out, err);
}

int compare(const report::CompareCommand& command, std::ostream& out, std::ostream& err) {
  return report::compare_command(command, out, err);
}

int gate(const report::GateCommand& command, std::ostream& out, std::ostream& err) {
  return report::gate_command(command, out, err);
}

int export_run(const report::ExportCommand& command, std::ostream& out, std::ostream& err) {
  return report::export_command(command, out, err);
}

int history(const report::HistoryCommand& command, const MetricsExport& metrics, std::ostream& out, std::ostream& err) {
  const std::string& f = command.format;
  if (f != "text" && f != "markdown" && f != "json" && f != "html" && f != "prometheus") {
    err << "vmlat: --format must be text, markdown, json, html or prometheus (got '" << f << "')\n";
    return exit_code::usage;
  }
  const auto h = report::read_history(command, err);
  if (!h) return exit_code::usage;
  exporter::MetricSet set;
  std::vector<exporter::ChangePointMetric> changes;
  for (const auto& c : h->changes) {
    exporter::ChangePointMetric m{c.host, c.cell, c.stat, c.run_id, -1, c.before_ns, c.after_ns, {}};
    const auto at = std::find(h->run_ids.begin(), h->run_ids.end(), c.run_id) - h->run_ids.begin();
    if (static_cast<std::size_t>(at) < h->run_started.size()) m.run_start_s = exporter::iso8601_to_epoch(h->run_started[at]);
    for (const auto& fact : c.facts_changed) m.facts.push_back(fact.path);
    changes.push_back(std::move(m));
  }
  exporter::add_change_point_metrics(set, h->plan, h->run_ids.size(), changes);
  int code = f == "prometheus" ? report::write_output(exporter::to_text(set.families()), command.output, out, err)
                               : report::write_history(command, *h, out, err);
  if (code != exit_code::pass) return code;
  if (auto push = push_options(metrics)) {
    // Its own job, one group per plan: a push replaces the plan's change
    // points, so those that a shorter --last window no longer shows go too.
    push->job = "vmlat_history";
    const auto r = exporter::push_families(*push, {{"plan", h->plan}}, set.take());
    if (!r.ok) {
      err << "vmlat: push of the history of " << h->plan << " to " << push->url << " failed after " << r.attempts
          << " attempt" << (r.attempts == 1 ? "" : "s") << ": " << r.error << "\n";
      return exit_code::export_failed;
    }
    err << "vmlat: " << changes.size() << " change point" << (changes.size() == 1 ? "" : "s") << " of " << h->plan
        << " pushed to " << push->url << "\n";
  }
  return exit_code::pass;
}

int exec_libexec(const std::string& name, const std::vector<std::string>& args, std::ostream& err) {
  const auto tool = find_in_path(name, libexec_dirs());
  if (tool.empty()) {
    err << "vmlat: " << name << " not found (libexec/vmlat/" << name << "; build/libexec in a build tree)\n";
    return exit_code::infra;
  }
  std::vector<char*> argv{const_cast<char*>(name.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(tool.c_str(), argv.data());
  err << "vmlat: cannot run " << tool.string() << ": " << std::strerror(errno) << "\n";
  return exit_code::infra;
}

std::string check_push_url(const std::string& url) {
  exporter::ParsedUrl parsed;
  return exporter::parse_push_url(url, parsed);
}

std::optional<std::uint64_t> parse_size_bytes(const std::string& text, std::string* why) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    if (why) *why = "'" + text + "' is not a size (e.g. 256MiB, 16M, 4096)";
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  static const std::map<std::string, unsigned> shifts = {{"", 0},   {"B", 0},   {"K", 10},  {"KiB", 10}, {"M", 20},
                                                         {"MiB", 20}, {"G", 30}, {"GiB", 30}};
  auto it = shifts.find(unit);
  if (it == shifts.end() || n == 0 || n > (1ULL << (63 - it->second))) {
    if (why) *why = "'" + text + "' is not a positive size (units: B, KiB, MiB, GiB; K, M, G mean the same)";
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(n) << it->second;
}

void finish_process(int code) { exporter::finish_process(code); }

}  // namespace vmlat::app
