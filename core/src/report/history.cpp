#include "history.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>

#include "gates/regression.hpp"
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
  for (const auto& r : runs) h.run_ids.push_back(r.run.value("run_id", r.dir));
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

}  // namespace vmlat::report
