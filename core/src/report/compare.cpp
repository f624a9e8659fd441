#include "compare.hpp"

#include <set>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "text_escape.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {

const Series* find_series(const Cell& c, const std::string& name) {
  for (const auto& s : c.series)
    if (s.name == name) return &s;
  return nullptr;
}

bool series_measured(const Series* s) {
  if (!s || !s->merged) return false;
  const json& stats = s->merged->contains("stats") ? (*s->merged)["stats"] : json();
  return stats.is_object() && stats.value("samples", 0LL) > 0;
}

std::string percent_text(double r) {
  if (std::isnan(r)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", 100.0 * r);
  return buf;
}

std::string signed_latency(std::chrono::nanoseconds d) {
  return (d.count() < 0 ? "-" : "+") + format_latency(std::chrono::nanoseconds(std::llabs(d.count())));
}

// The text table's verdict column: a regression in capitals, as the lines above it.
std::string verdict_of(const StatComparison& s) {
  return s.regression() ? "REGRESSED" : std::string(stats::verdict_name(s.verdict.verdict));
}

std::string cell_name(const std::string& id, const std::string& series) {
  return series == kDefaultSeries ? id : id + " [" + series + "]";
}

std::vector<const CellComparison*> regressions_first(const Comparison& c) {
  std::vector<const CellComparison*> out;
  for (const auto& x : c.cells) out.push_back(&x);
  std::stable_sort(out.begin(), out.end(), [](const CellComparison* a, const CellComparison* b) {
    return a->regression() > b->regression();
  });
  return out;
}

std::string pad(std::string s, std::size_t w) {
  // Width in code points (format_latency prints ASCII; ids are ASCII by construction).
  if (s.size() < w) s += std::string(w - s.size(), ' ');
  return s;
}

}  // namespace

const Tolerance& CompareOptions::tolerance_of(const std::string& stat) const {
  auto it = per_stat.find(stat);
  return it == per_stat.end() ? tolerance : it->second;
}

bool CellComparison::regression() const {
  return std::any_of(changes.begin(), changes.end(), [](const StatComparison& s) { return s.regression(); });
}

bool CellComparison::improvement() const {
  return !regression() && std::any_of(changes.begin(), changes.end(), [](const StatComparison& s) { return s.improvement(); });
}

bool CellComparison::inconclusive() const {
  return !regression() && !improvement() &&
         std::any_of(changes.begin(), changes.end(), [](const StatComparison& s) { return s.inconclusive(); });
}

std::string CellComparison::verdict() const {
  return regression() ? "regressed" : improvement() ? "improved" : inconclusive() ? "inconclusive" : "unchanged";
}

int Comparison::inconclusive_statistics() const {
  int n = 0;
  for (const auto& cc : cells)
    for (const auto& s : cc.changes) n += s.inconclusive();
  return n;
}

int Comparison::regressions() const {
  return static_cast<int>(std::count_if(cells.begin(), cells.end(), [](const CellComparison& c) { return c.regression(); }));
}

int Comparison::improvements() const {
  return static_cast<int>(std::count_if(cells.begin(), cells.end(), [](const CellComparison& c) { return c.improvement(); }));
}

int Comparison::exit_code() const {
  if (regressions()) return exit_code::gate_failed;
  if (!not_measured_in_new.empty()) return exit_code::infra;
  return exit_code::pass;
}

namespace {

// Path components whose values change from run to run without meaning
// anything for latency.
bool volatile_fact(const std::string& key) {
  static const std::set<std::string> keys = {"argv", "pid", "tid", "threads", "boot", "hello", "teardown", "stop_status",
                                             "errors", "ok", "dir", "kernel", "initrd", "resolved", "accelerator_warning",
                                             "kvm_check", "port", "json_path", "temp_dir", "started", "finished", "socket",
                                             "console", "path", "program"};
  return keys.count(key) > 0;
}

void flatten_facts(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!volatile_fact(it.key())) flatten_facts(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  out[prefix] = dump_json(j);
}

std::map<std::string, std::string> cell_facts(const json* result) {
  std::map<std::string, std::string> out;
  if (!result || !result->is_object()) return out;
  if (result->contains("host_facts")) flatten_facts((*result)["host_facts"], "host", out);
  if (result->contains("facts") && (*result)["facts"].is_object()) {
    const json& f = (*result)["facts"];
    for (const char* part : {"backend", "probe", "workload"})
      if (f.contains(part)) flatten_facts(f[part], part, out);
  }
  return out;
}

}  // namespace

std::vector<FactChange> fact_changes(const json* base_result, const json* new_result) {
  auto b = cell_facts(base_result), n = cell_facts(new_result);
  std::vector<FactChange> changes;
  for (const auto& [path, value] : n) {
    auto it = b.find(path);
    if (it == b.end()) changes.push_back({path, "(absent)", value});
    else if (it->second != value) changes.push_back({path, it->second, value});
  }
  for (const auto& [path, value] : b)
    if (!n.count(path)) changes.push_back({path, value, "(absent)"});
  std::sort(changes.begin(), changes.end(), [](const FactChange& x, const FactChange& y) { return x.path < y.path; });
  return changes;
}

namespace {
std::chrono::nanoseconds rounded_ns(double v) {
  return std::chrono::nanoseconds(std::isfinite(v) ? std::llround(v) : 0);
}
}  // namespace

std::vector<std::pair<std::size_t, std::string>> fact_sources(const std::vector<const Run*>& history, const Run& now) {
  // As compare_runs chooses facts_from: per series of a cell of NOW that is
  // not skipped, the newest earlier run whose cell measured it.
  std::vector<std::unordered_map<std::string, const Cell*>> by_id(history.size());
  for (std::size_t k = 0; k < history.size(); ++k)
    for (const auto& c : history[k]->cells) by_id[k].emplace(c.id, &c);
  std::set<std::pair<std::size_t, std::string>> out;
  for (const auto& n : now.cells) {
    if (n.status == "skipped") continue;
    std::set<std::string> names;
    for (const auto& s : n.series) names.insert(s.name);
    for (const auto& cells : by_id)
      if (auto it = cells.find(n.id); it != cells.end())
        for (const auto& s : it->second->series) names.insert(s.name);
    for (const auto& name : names)
      for (std::size_t k = history.size(); k-- > 0;) {
        auto it = by_id[k].find(n.id);
        if (it == by_id[k].end() || it->second->status != "measured" || !series_measured(find_series(*it->second, name))) continue;
        out.emplace(k, n.id);
        break;
      }
  }
  return {out.begin(), out.end()};
}

Comparison compare_runs(const Run& base, const Run& now, const CompareOptions& options) {
  return compare_runs(std::vector<const Run*>{&base}, now, options);
}

Comparison compare_runs(const std::vector<const Run*>& history, const Run& now, const CompareOptions& options) {
  if (history.empty()) throw std::invalid_argument("compare_runs: an empty baseline");
  const Run& base = *history.back();
  Comparison out;
  out.base_dir = base.stored ? base.stored->dir : "";
  out.new_dir = now.stored ? now.stored->dir : "";
  out.base_run_id = base.run_id;
  out.new_run_id = now.run_id;
  out.base_plan = base.plan_name;
  out.new_plan = now.plan_name;
  out.options = options;
  for (const Run* r : history) out.history.push_back(r->run_id);
  std::map<std::string, const Cell*> base_cells, new_cells;
  for (const auto& c : base.cells) base_cells.emplace(c.id, &c);
  for (const auto& c : now.cells) new_cells.emplace(c.id, &c);
  // Each run's cells by id (the first of an id, as a search in run order finds it).
  std::vector<std::unordered_map<std::string, const Cell*>> by_id(history.size());
  for (std::size_t k = 0; k < history.size(); ++k)
    for (const auto& c : history[k]->cells) by_id[k].emplace(c.id, &c);

  for (const auto& n : now.cells) {
    auto b_it = base_cells.find(n.id);
    const Cell* b = b_it == base_cells.end() ? nullptr : b_it->second;
    // The cell in every run of the history, oldest first.
    std::vector<const Cell*> past;
    for (const auto& cells : by_id)
      if (auto it = cells.find(n.id); it != cells.end()) past.push_back(it->second);
    const bool measured_before =
        std::any_of(past.begin(), past.end(), [](const Cell* c) { return c->status == "measured"; });
    if (n.status == "skipped") {
      bool base_measured = b && b->status == "measured";
      if (base_measured)
        out.not_measured_in_new.push_back({n.id, kDefaultSeries, b->status, n.status, n.error});
      else
        out.skipped_in_both.push_back({n.id, kDefaultSeries, b ? b->status : "", n.status, n.error});
      continue;
    }
    // Every series either side has, the default first.
    std::vector<std::string> names;
    for (const auto& s : n.series) names.push_back(s.name);
    for (const Cell* c : past)
      for (const auto& s : c->series)
        if (std::find(names.begin(), names.end(), s.name) == names.end()) names.push_back(s.name);
    if (names.empty()) names.push_back(kDefaultSeries);
    for (const auto& name : names) {
      const Series* ns = find_series(n, name);
      std::vector<const Series*> bs;  // the series in the earlier runs that measured it
      const Cell* facts_from = nullptr;  // the newest of them
      for (const Cell* c : past) {
        const Series* s = find_series(*c, name);
        if (c->status == "measured" && series_measured(s)) {
          bs.push_back(s);
          facts_from = c;
        }
      }
      bool new_ok = n.status == "measured" && series_measured(ns);
      if (!new_ok) {
        out.not_measured_in_new.push_back({n.id, name, b ? b->status : "", n.status,
                                           n.status == "measured" ? "no samples" : n.error});
        continue;
      }
      if (bs.empty()) {
        out.only_in_new.push_back({n.id, name, b ? b->status : (measured_before ? "measured" : ""), n.status, ""});
        continue;
      }
      CellComparison cc;
      cc.id = n.id;
      cc.series = name;
      cc.axes = n.axes;
      for (const auto& stat : options.stats) {
        auto nv = stored_statistic(*ns->merged, stat);
        if (!nv) continue;
        std::vector<double> values;
        for (const Series* s : bs)
          if (auto v = stored_statistic(*s->merged, stat)) values.push_back(static_cast<double>(v->count()));
        if (values.empty()) continue;
        StatComparison sc;
        sc.test = stats::test_statistic(values, static_cast<double>(nv->count()), statistic_kind(stat),
                                        statistic_resolution_ns(stat),
                                        history_options(options.tolerance_of(stat.name), options.confidence));
        sc.stat = stat;
        sc.value = *nv;
        sc.base = rounded_ns(sc.test.center_ns);
        sc.allowed = rounded_ns(sc.test.allowed_ns);
        cc.changes.push_back(std::move(sc));
      }
      cc.facts = fact_changes(facts_from ? facts_from->result : nullptr, n.result);
      out.cells.push_back(std::move(cc));
    }
  }
  // One family: every statistic of the comparison (docs/statistics.md, "Multiplicity").
  std::vector<stats::StatisticTest> tests;
  for (const auto& cc : out.cells)
    for (const auto& s : cc.changes) tests.push_back(s.test);
  const stats::HistoryOptions family = history_options(options.tolerance, options.confidence);
  out.correction = std::string(stats::correction_name(family.correction));
  out.family = tests.size();
  const auto verdicts = stats::judge(tests, family);
  std::size_t k = 0;
  for (auto& cc : out.cells)
    for (auto& s : cc.changes) s.verdict = verdicts[k++];
  for (const auto& b : base.cells) {
    if (new_cells.count(b.id)) continue;
    if (b.status == "skipped") out.skipped_in_both.push_back({b.id, kDefaultSeries, b.status, "", b.error});
    else out.not_measured_in_new.push_back({b.id, kDefaultSeries, b.status, "", ""});
  }
  // What changed for every cell (a new kernel, another QEMU) is said once.
  if (!out.cells.empty()) {
    out.common_facts = out.cells.front().facts;
    for (const auto& cc : out.cells) {
      std::vector<FactChange> kept;
      for (const auto& f : out.common_facts)
        if (std::find(cc.facts.begin(), cc.facts.end(), f) != cc.facts.end()) kept.push_back(f);
      out.common_facts = kept;
    }
    for (auto& cc : out.cells)
      cc.facts.erase(std::remove_if(cc.facts.begin(), cc.facts.end(),
                                    [&](const FactChange& f) {
                                      return std::find(out.common_facts.begin(), out.common_facts.end(), f) != out.common_facts.end();
                                    }),
                     cc.facts.end());
  }
  return out;
}

namespace {

std::string tolerance_summary(const CompareOptions& o) {
  std::string s;
  for (const auto& stat : o.stats) s += (s.empty() ? "" : ", ") + stat.name + " " + o.tolerance_of(stat.name).text;
  return s + " (percentiles: at least 1us, their resolution)";
}

std::string percent_level(double confidence) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", 100.0 * confidence);
  return buf;
}

}  // namespace

// What the baseline is and how the verdicts were reached: a single run
// cannot show the spread between runs, and says so.
std::string baseline_summary(const Comparison& c) {
  const std::size_t n = c.history.size();
  if (n <= 1)
    return "1 earlier run (" + c.base_run_id +
           "): the spread between runs cannot be judged; verdicts by the tolerance rule against it";
  std::string runs = std::to_string(n) + " earlier runs (" + c.history.front() + " .. " + c.history.back() + ")";
  if (n < stats::HistoryOptions{}.min_runs)
    return runs + ": too few to judge the spread between runs; the tolerance rule against their median (BASE)";
  return runs + ": BASE is their median; verdicts at confidence " + percent_level(c.options.confidence) + " over " +
         std::to_string(c.family) + " statistics (" + c.correction + ")";
}

std::string compare_text(const Comparison& c) {
  std::ostringstream out;
  out << "vmlat compare: " << line_safe(c.base_run_id) << " (base, " << line_safe(c.base_dir) << ") -> "
      << line_safe(c.new_run_id) << " (new, " << line_safe(c.new_dir) << ")\n";
  out << "baseline: " << line_safe(baseline_summary(c)) << "\n";
  out << "tolerance: " << tolerance_summary(c.options) << "\n";
  int code = c.exit_code();
  out << (code == 0 ? "OK" : code == 1 ? "REGRESSION" : "NOT MEASURED") << ": " << c.cells.size() << " cell"
      << (c.cells.size() == 1 ? "" : "s") << " compared, " << c.regressions() << " regressed, " << c.improvements()
      << " improved, " << c.inconclusive_statistics() << " statistics inconclusive; " << c.not_measured_in_new.size() << " not measured in new, " << c.only_in_new.size()
      << " without baseline, " << c.skipped_in_both.size() << " not runnable in either\n";
  // The answer first: every regression as one line naming the cell and the change.
  for (const auto* cc : regressions_first(c)) {
    if (!cc->regression()) break;
    for (const auto& s : cc->changes)
      if (s.regression())
        out << "REGRESSION " << line_safe(cell_name(cc->id, cc->series)) << ": " << s.stat.name << " "
            << format_latency(s.base) << " -> " << format_latency(s.value) << " (" << signed_latency(s.delta()) << ", "
            << percent_text(s.relative()) << "; allowed +" << format_latency(s.allowed) << "; "
            << line_safe(s.verdict.why) << ")\n";
  }
  // What would make an inconclusive verdict conclusive.
  for (const auto* cc : regressions_first(c))
    for (const auto& s : cc->changes)
      if (s.inconclusive())
        out << "INCONCLUSIVE " << line_safe(cell_name(cc->id, cc->series)) << ": " << s.stat.name << ": "
            << line_safe(s.verdict.why) << "\n";
  // Beside the latency change, what differs between the two runs.
  if (!c.common_facts.empty()) {
    out << "facts that differ (every compared cell):\n";
    for (const auto& f : c.common_facts)
      out << "  " << line_safe(f.path) << ": " << line_safe(f.base) << " -> " << line_safe(f.now) << "\n";
  }
  for (const auto* cc : regressions_first(c)) {
    if (cc->facts.empty()) continue;
    out << "facts that differ for " << line_safe(cell_name(cc->id, cc->series)) << ":\n";
    for (const auto& f : cc->facts) out << "  " << line_safe(f.path) << ": " << line_safe(f.base) << " -> " << line_safe(f.now) << "\n";
  }
  for (const auto& u : c.not_measured_in_new)
    out << "NOT MEASURED in new: " << line_safe(cell_name(u.id, u.series)) << " ("
        << (u.new_status.empty() ? "absent" : line_safe(u.new_status)) << (u.error.empty() ? "" : ": " + line_safe(u.error))
        << ")\n";
  for (const auto& u : c.only_in_new)
    out << "NO BASELINE: " << line_safe(cell_name(u.id, u.series)) << " ("
        << (u.base_status.empty() ? "not in base" : "base: " + line_safe(u.base_status)) << ")\n";
  if (!c.cells.empty()) {
    struct Row { std::string cell, stat, base, now, change, pct, allowed, verdict; };
    std::vector<Row> rows;
    for (const auto* cc : regressions_first(c))
      for (const auto& s : cc->changes)
        rows.push_back({line_safe(cell_name(cc->id, cc->series)), s.stat.name, format_latency(s.base), format_latency(s.value),
                        signed_latency(s.delta()), percent_text(s.relative()), "+" + format_latency(s.allowed), verdict_of(s)});
    Row head{"CELL", "STAT", "BASE", "NEW", "CHANGE", "REL", "ALLOWED", "VERDICT"};
    std::vector<std::size_t> w(7, 0);
    auto widen = [&](const Row& r) {
      const std::string* f[] = {&r.cell, &r.stat, &r.base, &r.now, &r.change, &r.pct, &r.allowed};
      for (std::size_t i = 0; i < 7; ++i) w[i] = std::max(w[i], f[i]->size());
    };
    widen(head);
    for (const auto& r : rows) widen(r);
    auto line = [&](const Row& r) {
      out << pad(r.cell, w[0]) << "  " << pad(r.stat, w[1]) << "  " << pad(r.base, w[2]) << "  " << pad(r.now, w[3]) << "  "
          << pad(r.change, w[4]) << "  " << pad(r.pct, w[5]) << "  " << pad(r.allowed, w[6]) << "  " << r.verdict << "\n";
    };
    out << "\n";
    line(head);
    for (const auto& r : rows) line(r);
  }
  return out.str();
}

std::string compare_markdown(const Comparison& c) {
  std::ostringstream out;
  int code = c.exit_code();
  out << "### Comparison with " << markdown_escape(c.base_run_id) << ": "
      << (code == 0 ? "no regression" : code == 1 ? "**REGRESSION**" : "**cells not measured**") << "\n\n";
  out << c.cells.size() << " cells compared (" << markdown_escape(c.base_run_id) << " → " << markdown_escape(c.new_run_id)
      << "), " << c.regressions() << " regressed, " << c.improvements() << " improved, " << c.inconclusive_statistics()
      << " statistics inconclusive; tolerance " << markdown_escape(tolerance_summary(c.options)) << "\n\n";
  out << "Baseline: " << markdown_escape(baseline_summary(c)) << "\n\n";
  bool any_inconclusive = false;
  for (const auto* cc : regressions_first(c))
    for (const auto& s : cc->changes)
      if (s.inconclusive()) {
        if (!any_inconclusive) out << "Inconclusive, and what would make them conclusive:\n\n";
        any_inconclusive = true;
        out << "- " << markdown_escape(cell_name(cc->id, cc->series)) << " " << markdown_escape(s.stat.name) << ": "
            << markdown_escape(s.verdict.why) << "\n";
      }
  if (any_inconclusive) out << "\n";
  for (const auto& u : c.not_measured_in_new)
    out << "- not measured in new: " << markdown_escape(cell_name(u.id, u.series)) << " ("
        << markdown_escape(u.new_status.empty() ? "absent" : u.new_status) << (u.error.empty() ? "" : ": " + markdown_escape(u.error))
        << ")\n";
  for (const auto& u : c.only_in_new) out << "- no baseline: " << markdown_escape(cell_name(u.id, u.series)) << "\n";
  if (!c.common_facts.empty()) {
    out << "\nFacts that differ in every compared cell:\n\n";
    for (const auto& f : c.common_facts)
      out << "- `" << markdown_escape(f.path) << "`: " << markdown_escape(f.base) << " → " << markdown_escape(f.now) << "\n";
  }
  if (!c.not_measured_in_new.empty() || !c.only_in_new.empty()) out << "\n";
  if (c.cells.empty()) return out.str();
  out << "| cell | ";
  for (const auto& s : c.options.stats) out << markdown_escape(s.name) << " | ";
  out << "verdict |\n|---|";
  for (std::size_t i = 0; i < c.options.stats.size(); ++i) out << "---:|";
  out << "---|\n";
  for (const auto* cc : regressions_first(c)) {
    out << "| " << markdown_escape(cell_name(cc->id, cc->series)) << " | ";
    for (const auto& stat : c.options.stats) {
      auto s = std::find_if(cc->changes.begin(), cc->changes.end(), [&](const StatComparison& x) { return x.stat.name == stat.name; });
      if (s == cc->changes.end()) out << "– | ";
      else
        out << (s->regression() ? "**" : "") << format_latency(s->base) << " → " << format_latency(s->value) << " ("
            << percent_text(s->relative()) << ")" << (s->regression() ? "**" : "") << " | ";
    }
    out << (cc->regression() ? "**REGRESSED**" : cc->verdict()) << " |\n";
  }
  return out.str();
}

namespace {
json facts_json(const std::vector<FactChange>& facts) {
  json a = json::array();
  for (const auto& f : facts) a.push_back(json{{"fact", f.path}, {"base", f.base}, {"new", f.now}});
  return a;
}
}  // namespace

json compare_json(const Comparison& c) {
  auto unpaired = [](const std::vector<Unpaired>& list) {
    json a = json::array();
    for (const auto& u : list)
      a.push_back(json{{"cell", u.id}, {"series", u.series},
                       {"base_status", u.base_status.empty() ? json(nullptr) : json(u.base_status)},
                       {"new_status", u.new_status.empty() ? json(nullptr) : json(u.new_status)},
                       {"error", u.error.empty() ? json(nullptr) : json(u.error)}});
    return a;
  };
  json tolerances = json::object();
  for (const auto& s : c.options.stats) tolerances[s.name] = c.options.tolerance_of(s.name).text;
  json cells = json::array();
  for (const auto* cc : regressions_first(c)) {
    json changes = json::array();
    for (const auto& s : cc->changes) {
      double rel = s.relative();
      json j = stats::to_json(s.test, s.verdict);
      j.update(json{{"stat", s.stat.name}, {"base_ns", s.base.count()}, {"new_ns", s.value.count()},
                    {"delta_ns", s.delta().count()}, {"relative", std::isnan(rel) ? json(nullptr) : json(rel)},
                    {"allowed_ns", s.allowed.count()}});
      changes.push_back(std::move(j));
    }
    json axes = json::object();
    for (const auto& [k, v] : cc->axes) axes[k] = v;
    cells.push_back(json{{"cell", cc->id}, {"series", cc->series}, {"axes", axes},
                         {"verdict", cc->verdict()},
                         {"stats", changes}, {"facts_differ", facts_json(cc->facts)}});
  }
  return json{{"schema", "vmlat-compare/2"},
              {"base", {{"dir", c.base_dir}, {"run_id", c.base_run_id}, {"plan", c.base_plan}}},
              {"history", {{"runs", c.history}, {"count", c.history.size()}, {"summary", baseline_summary(c)}}},
              {"confidence", c.options.confidence},
              {"correction", c.correction},
              {"statistics", c.family},
              {"new", {{"dir", c.new_dir}, {"run_id", c.new_run_id}, {"plan", c.new_plan}}},
              {"tolerance", tolerances},
              {"exit_code", c.exit_code()},
              {"summary",
               {{"compared", c.cells.size()}, {"regressed", c.regressions()}, {"improved", c.improvements()},
                {"inconclusive_statistics", c.inconclusive_statistics()}, {"not_measured_in_new", c.not_measured_in_new.size()}, {"without_baseline", c.only_in_new.size()},
                {"skipped_in_both", c.skipped_in_both.size()}}},
              {"cells", cells},
              {"facts_differ", facts_json(c.common_facts)},
              {"not_measured_in_new", unpaired(c.not_measured_in_new)},
              {"without_baseline", unpaired(c.only_in_new)},
              {"skipped_in_both", unpaired(c.skipped_in_both)}};
}

}  // namespace vmlat::report
