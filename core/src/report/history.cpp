#include "history.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>

#include "gates/regression.hpp"
#include "plots.hpp"
#include "report.hpp"
#include "stats/changepoint.hpp"
#include "text_escape.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {


std::string latency(double ns) { return format_latency(std::chrono::nanoseconds(std::llround(ns))); }

std::string p_text(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", p);
  return buf;
}

}  // namespace

const std::vector<StatName>& history_statistics() {
  static const std::vector<StatName> stats = {{"p50", 0.50}, {"p99", 0.99}, {"p99.9", 0.999}, {"max", 0}};
  return stats;
}

History build_history(const std::vector<StoredRun>& runs, const std::string& dir, double confidence) {
  History h;
  h.dir = dir;
  h.confidence = confidence;
  if (!runs.empty() && runs.back().run.contains("plan") && runs.back().run["plan"].is_object())
    h.plan = runs.back().run["plan"].value("name", std::string());
  for (const auto& r : runs) {
    h.run_ids.push_back(r.run.value("run_id", r.dir));
    const auto started = r.run.find("started");
    h.run_started.push_back(started != r.run.end() && started->is_string() ? started->get<std::string>() : "");
  }
  // Cells in the newest run's order, then those only older runs had.
  std::vector<std::string> cells;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it)
    for (const auto& c : it->cells) {
      std::string id = c.contains("cell") && c["cell"].is_object() ? c["cell"].value("id", std::string()) : "";
      if (!id.empty() && std::find(cells.begin(), cells.end(), id) == cells.end()) cells.push_back(id);
    }
  std::vector<std::unordered_map<std::string, const json*>> by_id(runs.size());  // the first result of an id in each run
  for (std::size_t i = 0; i < runs.size(); ++i)
    for (const auto& c : runs[i].cells)
      if (c.contains("cell") && c["cell"].is_object()) by_id[i].emplace(c["cell"].value("id", std::string()), &c);
  std::vector<std::vector<const json*>> results;  // per series: the result.json of each point
  for (const auto& id : cells)
    for (const auto& stat : history_statistics()) {
      HistorySeries s{id, stat.name, {}, {}};
      std::vector<const json*> docs;
      for (std::size_t i = 0; i < runs.size(); ++i) {
        auto found = by_id[i].find(id);
        const json* c = found == by_id[i].end() ? nullptr : found->second;
        if (!c || c->value("status", std::string()) != "measured" || !c->contains("merged")) continue;
        if (auto v = stored_statistic((*c)["merged"], stat)) {
          s.runs.push_back(i);
          s.values_ns.push_back(static_cast<double>(v->count()));
          docs.push_back(c);
        }
      }
      if (s.values_ns.empty()) continue;
      h.series.push_back(std::move(s));
      results.push_back(std::move(docs));
    }
  std::vector<std::vector<double>> values;
  std::vector<double> resolutions;
  for (const auto& s : h.series) {
    values.push_back(s.values_ns);
    StatName name{s.stat, s.stat == "max" ? 0.0 : 0.5};
    resolutions.push_back(statistic_resolution_ns(name));
  }
  stats::ChangePointOptions options;
  options.confidence = confidence;
  const auto found = stats::change_points(values, resolutions, options);
  for (std::size_t k = 0; k < found.size(); ++k)
    for (const auto& cp : found[k]) {
      const auto& s = h.series[k];
      if (cp.index == 0 || cp.index >= s.runs.size()) continue;
      HistoryChange c;
      c.cell = s.cell;
      c.stat = s.stat;
      c.run_id = h.run_ids[s.runs[cp.index]];
      c.previous_run_id = h.run_ids[s.runs[cp.index - 1]];
      c.before_ns = cp.before_ns;
      c.after_ns = cp.after_ns;
      c.p = cp.p;
      c.facts_changed = fact_changes(results[k][cp.index - 1], results[k][cp.index]);
      const json* cell = results[k][cp.index];
      if (cell->contains("cell") && (*cell)["cell"].is_object()) {
        const auto host = (*cell)["cell"].find("host");
        if (host != (*cell)["cell"].end() && host->is_string()) c.host = host->get<std::string>();
      }
      h.changes.push_back(std::move(c));
    }
  return h;
}

std::string history_text(const History& h) {
  std::ostringstream out;
  out << "vmlat history: " << line_safe(h.dir) << ": " << h.run_ids.size() << " complete run"
      << (h.run_ids.size() == 1 ? "" : "s") << " of plan " << line_safe(h.plan);
  if (!h.run_ids.empty()) out << " (" << line_safe(h.run_ids.front()) << " .. " << line_safe(h.run_ids.back()) << ")";
  out << ", " << h.series.size() << " series (cell x statistic); change points at confidence " << 100 * h.confidence
      << "% over them all\n";
  if (h.changes.empty()) out << "no change points\n";
  for (const auto& c : h.changes) {
    out << "CHANGE " << line_safe(c.cell) << " " << c.stat << " at run " << line_safe(c.run_id) << ": " << latency(c.before_ns)
        << " -> " << latency(c.after_ns) << " (p " << p_text(c.p) << ")\n";
    if (c.facts_changed.empty()) out << "  no recorded fact differs from run " << line_safe(c.previous_run_id) << "\n";
    for (const auto& f : c.facts_changed)
      out << "  " << line_safe(f.path) << ": " << line_safe(f.base) << " -> " << line_safe(f.now) << "\n";
  }
  return out.str();
}

std::string history_markdown(const History& h) {
  std::ostringstream out;
  out << "### History of " << markdown_escape(h.plan) << ": " << h.run_ids.size() << " runs, " << h.changes.size()
      << " change point" << (h.changes.size() == 1 ? "" : "s") << "\n\n";
  if (h.changes.empty()) return out.str() + "No change points at confidence " + p_text(h.confidence) + ".\n";
  out << "| cell | stat | run | before | after | p | facts changed |\n|---|---|---|---:|---:|---:|---|\n";
  for (const auto& c : h.changes) {
    std::string facts;
    for (const auto& f : c.facts_changed)
      facts += (facts.empty() ? "" : "; ") + markdown_escape(f.path) + ": " + markdown_escape(f.base) + " → " + markdown_escape(f.now);
    out << "| " << markdown_escape(c.cell) << " | " << c.stat << " | " << markdown_escape(c.run_id) << " | "
        << latency(c.before_ns) << " | " << latency(c.after_ns) << " | " << p_text(c.p) << " | "
        << (facts.empty() ? "none recorded" : facts) << " |\n";
  }
  return out.str();
}

json history_json(const History& h) {
  json series = json::array();
  for (const auto& s : h.series) {
    json ids = json::array();
    for (auto i : s.runs) ids.push_back(h.run_ids[i]);
    json values = json::array();
    for (double v : s.values_ns) values.push_back(std::llround(v));
    series.push_back(json{{"cell", s.cell}, {"stat", s.stat}, {"run_ids", ids}, {"values_ns", values}});
  }
  json changes = json::array();
  for (const auto& c : h.changes) {
    json facts = json::array();
    for (const auto& f : c.facts_changed) facts.push_back(json{{"fact", f.path}, {"before", f.base}, {"after", f.now}});
    changes.push_back(json{{"cell", c.cell}, {"stat", c.stat}, {"run_id", c.run_id}, {"previous_run_id", c.previous_run_id},
                           {"before_ns", std::llround(c.before_ns)}, {"after_ns", std::llround(c.after_ns)}, {"p", c.p},
                           {"facts_changed", facts}});
  }
  return json{{"schema", "vmlat-history/1"}, {"dir", h.dir},        {"plan", h.plan},          {"confidence", h.confidence},
              {"runs", h.run_ids},           {"series", series},    {"change_points", changes}};
}

namespace {

// A statistic's CSS class ("p99.9" has a dot, which a class selector would need escaped).
std::string stat_class(const std::string& stat) {
  std::string c = "stat-";
  for (char ch : stat)
    if (ch != '.') c += ch;
  return c;
}

std::string facts_text(const HistoryChange& c) {
  std::string t;
  for (const auto& f : c.facts_changed) t += (t.empty() ? "" : "; ") + f.path + ": " + f.base + " -> " + f.now;
  return t.empty() ? "no recorded fact differs from run " + c.previous_run_id : t;
}

constexpr const char* kHistoryStyle = R"(
svg .stat-p50{stroke:#3465a4}svg .stat-p99{stroke:#4e9a06}svg .stat-p999{stroke:#c4a000}svg .stat-max{stroke:#1d1d1f;stroke-width:2}
svg line.change{stroke-width:2;stroke-dasharray:4 3;opacity:.8}svg line.change.stat-max{stroke:#b3261e}
ul.facts{margin:0;padding-left:1.2em}section.history-cell{border:1px solid #ddd;border-radius:6px;padding:10px 12px;margin:14px 0}
)";

}  // namespace

std::string history_html(const History& h) {
  auto esc = [](std::string_view v) { return html_escape(v); };
  std::string out = html_page_start("vmlat history: " + h.plan, kHistoryStyle);
  out += "<header id=\"history\" data-runs=\"" + std::to_string(h.run_ids.size()) + "\" data-change-points=\"" +
         std::to_string(h.changes.size()) + "\"><h1>vmlat history: " + esc(h.plan) + "</h1><p>" + esc(h.dir) + ": " +
         std::to_string(h.run_ids.size()) + " complete run" + (h.run_ids.size() == 1 ? "" : "s");
  if (!h.run_ids.empty()) out += " (" + esc(h.run_ids.front()) + " .. " + esc(h.run_ids.back()) + ")";
  out += ", " + std::to_string(h.series.size()) + " series (cell × statistic); change points at confidence " +
         p_text(h.confidence) + " over them all (docs/statistics.md, \"Change points\").</p></header>";

  // Cells in the order of the series, each numbered for its anchor.
  std::vector<std::string> cells;
  for (const auto& s : h.series)
    if (std::find(cells.begin(), cells.end(), s.cell) == cells.end()) cells.push_back(s.cell);
  auto anchor = [&](const std::string& cell) {
    return "hcell-" + std::to_string(std::find(cells.begin(), cells.end(), cell) - cells.begin());
  };

  out += "<section id=\"change-points\"><h2>Change points</h2>";
  if (h.changes.empty()) out += "<p class=\"none\">No change points.</p>";
  else {
    out += "<table class=\"change-points\"><tr><th>cell</th><th>stat</th><th>from run</th><th>last run before</th>"
           "<th class=\"num\">before</th><th class=\"num\">after</th><th class=\"num\">p</th><th>facts changed</th></tr>";
    for (const auto& c : h.changes) {
      out += "<tr class=\"change-point\" data-cell-id=\"" + esc(c.cell) + "\" data-stat=\"" + esc(c.stat) +
             "\" data-run-id=\"" + esc(c.run_id) + "\"><td><a href=\"#" + anchor(c.cell) + "\">" + esc(c.cell) +
             "</a></td><td>" + esc(c.stat) + "</td><td>" + esc(c.run_id) + "</td><td>" + esc(c.previous_run_id) +
             "</td><td class=\"num\">" + esc(latency(c.before_ns)) + "</td><td class=\"num\">" + esc(latency(c.after_ns)) +
             "</td><td class=\"num\">" + p_text(c.p) + "</td><td>";
      if (c.facts_changed.empty()) out += "none recorded";
      else {
        out += "<ul class=\"facts\">";
        for (const auto& f : c.facts_changed)
          out += "<li class=\"fact\" data-fact=\"" + esc(f.path) + "\"><code>" + esc(f.path) + "</code>: " + esc(f.base) +
                 " → " + esc(f.now) + "</li>";
        out += "</ul>";
      }
      out += "</td></tr>";
    }
    out += "</table>";
  }
  out += "</section><section id=\"runs\"><h2>Runs</h2><details><summary>" + std::to_string(h.run_ids.size()) +
         " runs, numbered as on the plots' x axis</summary><table class=\"runs\"><tr><th class=\"num\">#</th>"
         "<th>run</th><th>started</th></tr>";
  for (std::size_t i = 0; i < h.run_ids.size(); ++i)
    out += "<tr><td class=\"num\">" + std::to_string(i + 1) + "</td><td>" + esc(h.run_ids[i]) + "</td><td>" +
           esc(i < h.run_started.size() ? h.run_started[i] : "") + "</td></tr>";
  out += "</table></details></section><section id=\"cells\"><h2>Series per cell</h2>";
  for (const auto& cell : cells) {
    std::vector<SeriesLine> lines;
    for (const auto& s : h.series) {
      if (s.cell != cell) continue;
      SeriesLine l{s.stat, stat_class(s.stat), {}};
      for (std::size_t i = 0; i < s.runs.size(); ++i)
        l.points.emplace_back(static_cast<double>(s.runs[i] + 1), s.values_ns[i]);
      lines.push_back(std::move(l));
    }
    std::vector<SeriesMark> marks;
    for (const auto& c : h.changes) {
      if (c.cell != cell) continue;
      const auto at = std::find(h.run_ids.begin(), h.run_ids.end(), c.run_id) - h.run_ids.begin();
      marks.push_back(SeriesMark{static_cast<double>(at + 1), "change " + stat_class(c.stat),
                                 c.stat + " changed at run " + c.run_id + ": " + latency(c.before_ns) + " -> " +
                                     latency(c.after_ns) + "; " + facts_text(c),
                                 "data-stat=\"" + esc(c.stat) + "\" data-run-id=\"" + esc(c.run_id) + "\""});
    }
    out += "<section class=\"history-cell\" id=\"" + anchor(cell) + "\" data-cell-id=\"" + esc(cell) +
           "\" data-change-points=\"" + std::to_string(marks.size()) + "\"><h3>" + esc(cell) + "</h3>" +
           series_svg(lines, marks, h.run_ids.size(), "class=\"plot history\" data-cell-id=\"" + esc(cell) + "\"") +
           "</section>";
  }
  out += "</section><footer class=\"small\">vmlat history, self-contained: no script, nothing loaded from the network. "
         "Each line is a statistic of the cell's merged histogram in the runs that measured it; a dashed line marks "
         "the first run of a new level (hover it for the facts that changed).</footer></body></html>\n";
  return out;
}

}  // namespace vmlat::report
