// The HTML report: verdict and system identity first, then the gates, the
// comparison with a baseline, the seed study's tables, the period sweep, and
// one section per cell with its statistics, histogram and CCDF (rteval's and
// OSADL's order: the answer, then the evidence).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "decompose.hpp"
#include "json_access.hpp"
#include "plots.hpp"
#include "report.hpp"
#include "tails.hpp"
#include "text_escape.hpp"
#include "traces.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {

std::string esc(std::string_view s) { return html_escape(s); }

std::string latency(std::optional<long long> ns) {
  return ns ? format_latency(std::chrono::nanoseconds(*ns)) : std::string("–");
}

std::string count(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_number() ? v.dump() : std::string("–");
}

std::string percent(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", 100.0 * r);
  return buf;
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 48px;color:#1d1d1f}
h1{font-size:22px;margin:0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse;margin:6px 0}caption{text-align:left;font-weight:600;padding:2px 0}td,th{border:1px solid #ccc;padding:2px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
header.verdict{padding:14px 18px;margin:16px 0;border-radius:6px;color:#fff}
header.pass{background:#2f7d32}header.fail{background:#b3261e}header.error{background:#b26a00}header.incomplete{background:#5f6368}
.word{font-size:28px;font-weight:700;margin:4px 0}.small{color:#555;font-size:12px}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;background:#e0e0e0;margin-left:6px}
.v-pass,.v-holds{background:#d7ecd8}.v-fail,.v-violated{background:#f6d5d2}.v-inconclusive{background:#e8e8e8}.v-error{background:#fbe3bf}.v-skipped{background:#e8e8e8}
section.cell{border:1px solid #ddd;border-radius:6px;padding:10px 12px;margin:14px 0}
.error{color:#8a1c14;white-space:pre-wrap}.axes{color:#444}.plots{display:flex;flex-wrap:wrap;gap:8px}
svg.plot{background:#fff;border:1px solid #eee}svg .frame{fill:none;stroke:#888}svg .grid{stroke:#eee}
svg text{font:10px sans-serif;fill:#333}svg .axis-title{font-size:11px}svg .note{fill:#b3261e}
svg .bars{fill:#3465a4}svg .max{stroke:#b3261e;stroke-dasharray:3 2}svg .line{fill:none;stroke-width:1}svg .merged{stroke:#1d1d1f;stroke-width:2}
svg .baseline{stroke:#e37400;stroke-width:1.5;stroke-dasharray:5 3}
svg .cpu0{stroke:#3465a4}svg .cpu1{stroke:#4e9a06}svg .cpu2{stroke:#c4a000}svg .cpu3{stroke:#75507b}
svg .cpu4{stroke:#ce5c00}svg .cpu5{stroke:#06989a}svg .cpu6{stroke:#cc0000}svg .cpu7{stroke:#8f5902}
details{margin:6px 0}summary{cursor:pointer;color:#333}table.tails tr.cpu td:first-child{padding-left:2em;color:#555}
svg .part.timer,svg rect.timer{fill:#c4a000}svg .part.irq{fill:#cc0000}svg .part.np{fill:#3465a4}
svg .spike{fill:#b3261e}svg .uncertainty{stroke:#b3261e;stroke-width:1}svg .spike-line{stroke:#b3261e;stroke-dasharray:3 2}
svg .running{fill:#8ae234}svg .ev{stroke-width:1}svg .ev-switch{stroke:#204a87}svg .ev-wakeup{stroke:#f57900}
svg .ev-exit{stroke:#5c3566}svg .ev-entry{stroke:#06989a}svg .ev-marker{stroke:#b3261e;stroke-width:2}svg .ev-other{stroke:#888}
svg .ev-irq{stroke:#c4a000}svg .ev-timer{stroke:#4e9a06}
.run-mark{font-size:.8em;color:#555;margin-left:.4em}.run-mark.twin{color:#8f5902;font-weight:bold}th.machine{background:#e8e8f4}
)";

struct GateRow {
  const Cell* cell;
  const json* gate;
};

int verdict_order(const std::string& v) { return v == "fail" ? 0 : v == "error" ? 1 : v == "skipped" ? 2 : 3; }

// A merged report's mark of where a cell comes from: its run, and the other
// runs holding the same cell (shown there too, never dropped).
std::string run_mark(const Run& run, const Cell& c) {
  if (!run.merged()) return {};
  std::string also;
  for (const auto& id : c.also_in) also += (also.empty() ? "" : ", ") + id;
  return " <span class=\"run-mark" + std::string(also.empty() ? "" : " twin") + "\" data-run=\"" + esc(c.run_id) + "\">run " +
         esc(c.run_id) + (also.empty() ? "" : "; also measured in " + esc(also)) + "</span>";
}

std::string cell_link(const Run& run, const Cell& c) {
  return "<a href=\"#cell-" + std::to_string(c.index) + "\">" + esc(c.id) + "</a>" + run_mark(run, c);
}

void system_section(std::string& out, const Run& merged) {
  out += "<section id=\"system\"><h2>System</h2>";
  const std::vector<const Run*> runs = merged.runs();
  for (const Run* one : runs) {
    const Run& run = *one;
    const json& r = run.stored->run;
    if (merged.merged())
      out += "<h3 class=\"source-run\" data-run=\"" + esc(run.run_id) + "\">run " + esc(run.run_id) + ": " +
             esc(run.verdict.word) + "</h3>";
    out += "<table class=\"identity\">";
    auto row = [&](const std::string& k, const std::string& v) {
      if (!v.empty()) out += "<tr><th>" + esc(k) + "</th><td>" + esc(v) + "</td></tr>";
    };
    row("plan", run.plan_name);
    row("description", run.plan_description);
    row("run", run.run_id);
    row("vmlat", run.vmlat_version);
    row("started", run.started);
    row("finished", run.finished);
    row("status", run.status);
    if (run.exit_code) row("exit code", std::to_string(*run.exit_code));
    std::string argv;
    for (const auto& a : member(r, "command_line"))
      if (a.is_string()) argv += (argv.empty() ? "" : " ") + a.get<std::string>();
    row("command line", argv);
    out += "</table>";
    const json& hosts = member(r, "hosts");
    if (hosts.is_object()) {
      for (auto it = hosts.begin(); it != hosts.end(); ++it) {
        out += "<h3>host " + esc(it.key()) + "</h3><table class=\"host-facts\">";
        if (it.value().is_object())
          for (auto f = it.value().begin(); f != it.value().end(); ++f)
            out += "<tr><th>" + esc(f.key()) + "</th><td>" +
                   esc(f.value().is_string() ? f.value().get<std::string>() : f.value().dump()) + "</td></tr>";
        out += "</table>";
      }
    }
  }
  out += "</section>";
}

void gates_section(std::string& out, const Run& run) {
  out += "<section id=\"gates\"><h2>Gates</h2><p class=\"gate-counts\">" + std::to_string(run.gates.pass) + " passed, " +
         std::to_string(run.gates.fail) + " failed, " + std::to_string(run.gates.error) + " could not be evaluated, " +
         std::to_string(run.gates.skipped) + " skipped; " + std::to_string(run.measured) + " of " +
         std::to_string(run.cells.size()) + " cells measured</p>";
  std::vector<GateRow> rows;
  for (const auto& c : run.cells)
    for (const json* g : c.gates) rows.push_back({&c, g});
  std::stable_sort(rows.begin(), rows.end(), [](const GateRow& a, const GateRow& b) {
    return verdict_order(text_of(*a.gate, "verdict")) < verdict_order(text_of(*b.gate, "verdict"));
  });
  auto table = [&](auto begin, auto end) {
    out += "<table class=\"gates\"><tr><th>verdict</th><th>cell</th><th>gate</th><th>stat</th><th class=\"num\">value</th>"
           "<th class=\"num\">bound</th><th class=\"num\">exceeded by</th><th>message</th></tr>";
    for (auto it = begin; it != end; ++it) {
      const json& g = *it->gate;
      std::string v = text_of(g, "verdict");
      auto value = integer_at(g, "value_ns"), bound = integer_at(g, "bound_ns"), excess = integer_at(g, "excess_ns");
      std::string by = "–";
      if (v == "fail" && excess) {
        by = latency(excess);
        if (bound && *bound > 0) by += " (" + percent(static_cast<double>(*excess) / static_cast<double>(*bound)) + ")";
      }
      out += "<tr class=\"gate v-" + esc(v) + "\"><td>" + esc(v) + "</td><td>" + cell_link(run, *it->cell) + "</td><td>" +
             esc(text_of(g, "gate")) + "</td><td>" + esc(text_of(g, "stat")) + "</td><td class=\"num\">" +
             (v == "pass" || v == "fail" ? latency(value) : "–") + "</td><td class=\"num\">" +
             (v == "pass" || v == "fail" || !member(g, "baseline").is_string() ? latency(bound) : "baseline+" + esc(text_of(g, "tolerance"))) +
             "</td><td class=\"num\">" + by + "</td><td>" + esc(text_of(g, "message")) + "</td></tr>";
    }
    out += "</table>";
  };
  auto first_pass = std::find_if(rows.begin(), rows.end(), [](const GateRow& r) { return text_of(*r.gate, "verdict") == "pass"; });
  if (first_pass != rows.begin()) table(rows.begin(), first_pass);
  if (first_pass != rows.end()) {
    out += "<details class=\"passed\"" + std::string(first_pass == rows.begin() ? " open" : "") + "><summary>" +
           std::to_string(rows.end() - first_pass) + " passed</summary>";
    table(first_pass, rows.end());
    out += "</details>";
  }
  if (rows.empty()) out += "<p>The plan has no gates.</p>";
  out += "</section>";
}

void comparison_section(std::string& out, const Comparison& c) {
  int code = c.exit_code();
  out += "<section id=\"comparison\"><h2>Comparison with " + esc(c.base_run_id) + "</h2><p class=\"compare-verdict v-" +
         std::string(code == 0 ? "pass" : code == 1 ? "fail" : "error") + "\">" +
         (code == 0 ? "no regression" : code == 1 ? "REGRESSION" : "cells not measured") + ": " +
         std::to_string(c.cells.size()) + " cells compared, " + std::to_string(c.regressions()) + " regressed, " +
         std::to_string(c.improvements()) + " improved, " + std::to_string(c.not_measured_in_new.size()) +
         " not measured, " + std::to_string(c.only_in_new.size()) + " without baseline. Baseline: " + esc(baseline_summary(c)) + ". Tolerance:";
  for (const auto& s : c.options.stats) out += " " + esc(s.name) + " " + esc(c.options.tolerance_of(s.name).text);
  out += " (percentiles at least 1 µs).</p>";
  for (const auto& u : c.not_measured_in_new)
    out += "<p class=\"error\">not measured in this run: " + esc(u.id) + " (" + esc(u.new_status.empty() ? "absent" : u.new_status) +
           (u.error.empty() ? "" : ": " + esc(u.error)) + ")</p>";
  if (!c.only_in_new.empty()) {
    out += "<p>no baseline:";
    for (const auto& u : c.only_in_new) out += " " + esc(u.id);
    out += "</p>";
  }
  out += "<table class=\"comparison\"><tr><th>cell</th>";
  for (const auto& s : c.options.stats) out += "<th class=\"num\">" + esc(s.name) + "</th>";
  out += "<th>verdict</th></tr>";
  std::vector<const CellComparison*> rows;
  for (const auto& x : c.cells) rows.push_back(&x);
  std::stable_sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->regression() > b->regression(); });
  for (const auto* cc : rows) {
    out += "<tr class=\"" + std::string(cc->regression() ? "v-fail" : "") + "\"><td>" + esc(cc->id) + "</td>";
    for (const auto& stat : c.options.stats) {
      auto s = std::find_if(cc->changes.begin(), cc->changes.end(), [&](const StatChange& x) { return x.stat.name == stat.name; });
      if (s == cc->changes.end()) {
        out += "<td class=\"num\">–</td>";
        continue;
      }
      double rel = s->relative();
      out += "<td class=\"num" + std::string(s->regression() ? " v-fail" : "") + "\">" + format_latency(s->base) + " → " +
             format_latency(s->value) + (std::isnan(rel) ? "" : " (" + percent(rel) + ")") + "</td>";
    }
    out += "<td>" + std::string(cc->regression() ? "REGRESSED" : cc->verdict()) + "</td></tr>";
  }
  out += "</table></section>";
}

void entry_cell(std::string& out, const Run& run, const SeedEntry* e) {
  if (!e) {
    out += "<td class=\"num worst empty\">–</td>";
    return;
  }
  std::string ids;
  for (int i : e->cells) ids += (ids.empty() ? "" : " ") + run.cells[static_cast<std::size_t>(i)].id;
  out += "<td class=\"num worst\" data-cells=\"" + esc(ids) + "\"";
  if (e->worst_ns) out += " data-ns=\"" + std::to_string(*e->worst_ns) + "\"";
  out += ">";
  auto parts = entry_by_run(run, *e);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const SeedEntry& p = parts[i].second;
    // One value per run: the same cell measured in two runs is shown twice.
    if (parts.size() > 1) out += std::string(i ? "<br>" : "") + "<span class=\"by-run\" data-run=\"" + esc(parts[i].first) + "\">";
    if (p.worst_ns) out += esc(worst_case_text(*p.worst_ns));
    else out += esc(run.cells[static_cast<std::size_t>(p.cells.front())].status);
    if (p.not_measured && p.worst_ns) out += " <span class=\"small\">(" + std::to_string(p.not_measured) + " not measured)</span>";
    if (parts.size() > 1) out += " <span class=\"small\">run " + esc(parts[i].first) + "</span></span>";
  }
  out += "</td>";
}

void seed_section(std::string& out, const Run& run) {
  auto tables = seed_tables(run);
  if (tables.empty()) return;
  out += "<section id=\"seed\"><h2>Worst cases (the seed study's layout)</h2><p class=\"small\">Rows: host kernel / guest "
         "kernel (NRT or RT); Host: bare metal, Dom0: Xen's control domain, each with its kernel. Columns: backend, without and with stress. Entries: the "
         "worst case (max) of the cells that fall there.</p>";
  for (const auto& t : tables) {
    std::string caption;
    for (const auto& [k, v] : t.fixed) caption += (caption.empty() ? "" : ", ") + k + " = " + v;
    const bool machines = std::any_of(t.columns.begin(), t.columns.end(), [](const SeedColumn& c) { return !c.machine.empty(); });
    out += "<table class=\"seed\"><caption>" + esc(caption) + "</caption><tr><th rowspan=\"" + (machines ? "3" : "2") +
           "\">kernels</th>";
    if (machines) {  // the paper's machine columns (Core Duo, Core i7)
      for (std::size_t i = 0; i < t.columns.size();) {
        std::size_t j = i;
        while (j < t.columns.size() && t.columns[j].machine == t.columns[i].machine) ++j;
        out += "<th class=\"machine\" colspan=\"" + std::to_string(j - i) + "\">" + esc(t.columns[i].machine) + "</th>";
        i = j;
      }
      out += "</tr><tr>";
    }
    for (std::size_t i = 0; i < t.columns.size();) {
      std::size_t j = i;
      while (j < t.columns.size() && t.columns[j].backend == t.columns[i].backend && t.columns[j].machine == t.columns[i].machine) ++j;
      std::string accel = accelerators(run, t.columns[i].backend);
      out += "<th colspan=\"" + std::to_string(j - i) + "\">" + esc(t.columns[i].backend) +
             (accel.empty() || accel == "kvm" ? "" : " <span class=\"small\">(" + esc(accel) + ")</span>") + "</th>";
      i = j;
    }
    out += "</tr><tr>";
    for (const auto& c : t.columns) out += "<th>" + esc(c.label()) + "</th>";
    out += "</tr>";
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
      out += "<tr><th>" + esc(t.rows[r]) + "</th>";
      for (std::size_t c = 0; c < t.columns.size(); ++c) {
        auto it = t.entries.find({r, c});
        entry_cell(out, run, it == t.entries.end() ? nullptr : &it->second);
      }
      out += "</tr>";
    }
    out += "</table>";
  }
  out += "</section>";
}

void sweep_section(std::string& out, const Run& run) {
  auto sweep = period_sweep(run);
  if (sweep.periods.empty()) return;
  out += "<section id=\"sweep\"><h2>Period sweep (worst cases)</h2><p class=\"small\">A timer slop lifts only the periods "
         "shorter than it: a latency that grows as the period shrinks is timer resolution latency (the seed found "
         "Xen's 100 µs timer slop this way); one that is the same at every period is the non-preemptible part.</p>"
         "<table class=\"sweep\"><tr><th>cells</th>";
  for (const auto& p : sweep.periods) out += "<th class=\"num\">" + esc(p) + "</th>";
  out += "</tr>";
  for (const auto& row : sweep.rows) {
    std::string label;
    for (const auto& [k, v] : row.axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
    out += "<tr><th>" + esc(label) + "</th>";
    for (const auto& p : sweep.periods) {
      auto it = row.by_period.find(p);
      entry_cell(out, run, it == row.by_period.end() ? nullptr : &it->second);
    }
    out += "</tr>";
  }
  out += "</table></section>";
}

// The plans' claims ([[expect]]): each with its verdict and every pair's intervals.
void claims_section(std::string& out, const Run& run) {
  if (run.claims.empty()) return;
  auto side = [](const ExpectSide& s) { return esc(expect_side_text(s)) + " <span class=\"small\">" + esc(s.method) + "</span>"; };
  out += "<section id=\"claims\"><h2>Claims</h2><p class=\"small\">The plan's [[expect]] claims: the statistic of the cells "
         "<i>smaller</i> selects lies below that of their partners <i>larger</i> selects (the same values of every other axis). "
         "A pair holds when the two intervals do not overlap the right way round, is violated when they do not overlap the "
         "wrong way round, and is inconclusive otherwise (docs/statistics.md, \"Claims\").</p><table class=\"claims\">"
         "<tr><th>verdict</th><th>claim</th><th>stat</th><th>smaller</th><th>larger</th><th>why</th></tr>";
  for (const auto& e : run.claims) {
    out += "<tr class=\"claim v-" + esc(e.verdict) + "\" data-verdict=\"" + esc(e.verdict) + "\"><td>" + esc(e.verdict) +
           (e.spec.gate ? " <span class=\"badge\">gate</span>" : "") + "</td><td>" + esc(e.spec.name) +
           (e.spec.description.empty() ? "" : "<div class=\"small\">" + esc(e.spec.description) + "</div>") + "</td><td>" +
           esc(e.spec.stat) + "</td><td>" + esc(selector_text(e.spec.smaller)) + "</td><td>" + esc(selector_text(e.spec.larger)) +
           "</td><td>" + esc(e.reason);
    if (!e.pairs.empty()) {
      out += "<details><summary>" + std::to_string(e.pairs.size()) + " pair" + (e.pairs.size() == 1 ? "" : "s") +
             "</summary><table class=\"pairs\"><tr><th>pair</th><th>smaller</th><th>larger</th></tr>";
      for (const auto& p : e.pairs)
        out += "<tr class=\"v-" + esc(p.verdict) + "\"><td>" + esc(p.verdict) + "</td><td>" + side(p.smaller) + "</td><td>" +
               side(p.larger) + "</td></tr>";
      out += "</table></details>";
    }
    out += "</td></tr>";
  }
  out += "</table></section>";
}

// The seed's figures (default_overlays): the histograms and CCDFs of
// several cells in one plot each.
void figures_section(std::string& out, const Run& run) {
  auto overlays = plan_overlays(run);
  const bool defaults = default_figures_wanted(run);
  if (defaults)
    for (auto& o : default_overlays(run)) overlays.push_back(std::move(o));
  if (overlays.empty()) return;
  out += "<section id=\"figures\"><h2>Figures</h2><p class=\"small\">" +
         std::string(overlays.front().kind == "plan" ? "The figures the plan chooses ([[report.figure]]). " : "") +
         (defaults ? "Cells overlaid as in the seed study's figures: per backend its kernel combinations without and with "
                     "stress, per sweep its periods. "
                   : "") +
         "Histograms as outlines (1 µs bins, log count), CCDFs log-log.</p>";
  for (const auto& o : overlays) {
    std::vector<HistogramData> data;
    data.reserve(o.lines.size());
    std::vector<CcdfLine> lines;
    std::string ids;
    for (std::size_t i = 0; i < o.lines.size(); ++i) {
      const Cell& c = run.cells[static_cast<std::size_t>(o.lines[i].cell)];
      const json* merged = c.series.empty() ? nullptr : c.series.front().merged;
      auto h = merged ? decode_histogram(member(*merged, "histogram")) : std::nullopt;
      if (!h) continue;
      data.push_back(std::move(*h));
      ids += (ids.empty() ? "" : " ") + c.id;
      lines.push_back({o.lines[i].label, "cpu" + std::to_string(i % kMaxOverlayLines), nullptr});
    }
    for (std::size_t i = 0; i < lines.size(); ++i) lines[i].data = &data[i];
    if (lines.size() < 2) {
      // A plan's figure is shown even so: its author asked for it.
      if (o.kind == "plan")
        out += "<figure class=\"overlay-empty\" data-kind=\"plan\" data-cells=\"" + esc(ids) + "\"><figcaption>" + esc(o.title) +
               "</figcaption><p class=\"small\">" + std::to_string(lines.size()) +
               " measured cell(s) match this figure's cells: nothing to overlay.</p></figure>";
      continue;
    }
    std::string attr = "data-overlay=\"" + esc(o.kind) + "\" data-lines=\"" + std::to_string(lines.size()) + "\"";
    out += "<figure class=\"overlay\" data-kind=\"" + esc(o.kind) + "\" data-draw=\"" + esc(o.draw) + "\" data-cells=\"" + esc(ids) +
           "\"><figcaption>" + esc(o.title) +
           (o.left_out ? " <span class=\"small\">(" + std::to_string(o.left_out) + " more cells not drawn)</span>" : "") +
           "</figcaption><div class=\"plots\">" +
           (o.draw != "ccdf" ? histogram_overlay_svg(lines, "class=\"plot histogram overlay\" " + attr) : std::string()) +
           (o.draw != "histogram" ? ccdf_svg(lines, "class=\"plot ccdf overlay\" " + attr) : std::string()) + "</div></figure>";
  }
  out += "</section>";
}

void index_section(std::string& out, const Run& run) {
  std::vector<const Cell*> cells;
  for (const auto& c : run.cells) cells.push_back(&c);
  auto rank = [](const Cell* c) {
    std::string v = c->worst_verdict();
    if (v == "fail") return 0;
    if (!c->measured() && c->status != "skipped") return 1;
    if (v == "error") return 1;
    return 2;
  };
  std::stable_sort(cells.begin(), cells.end(), [&](const Cell* a, const Cell* b) { return rank(a) < rank(b); });
  out += "<section id=\"index\"><h2>Cells</h2><table class=\"cells\"><tr><th>#</th><th>cell</th><th>status</th>"
         "<th class=\"num\">samples</th><th class=\"num\">p99</th><th class=\"num\">max</th><th>gates</th></tr>";
  for (const Cell* c : cells) {
    const json* merged = c->series.empty() ? nullptr : c->series.front().merged;
    const json& stats = merged ? member(*merged, "stats") : member(json(), "");
    std::string v = c->worst_verdict();
    out += "<tr class=\"v-" + esc(v.empty() ? "none" : v) + "\"><td class=\"num\">" + std::to_string(c->index + 1) + "</td><td>" +
           cell_link(run, *c) + "</td><td>" + esc(c->status) + "</td><td class=\"num\">" + count(stats, "samples") +
           "</td><td class=\"num\">" + latency(integer_at(stats, "p99_ns")) + "</td><td class=\"num\">" + latency(c->max_ns) +
           "</td><td>" + esc(v.empty() ? "–" : v) + "</td></tr>";
  }
  out += "</table></section>";
}

void stats_row(std::string& out, const std::string& label, const json& doc) {
  const json& s = member(doc, "stats");
  out += "<tr><th>" + esc(label) + "</th><td class=\"num\">" + count(s, "samples") + "</td>";
  for (const char* k : {"min_ns", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "p99_99_ns"})
    out += "<td class=\"num\">" + latency(integer_at(s, k)) + "</td>";
  auto max = integer_at(s, "max_ns");
  out += "<td class=\"num max\"" + (max ? " data-ns=\"" + std::to_string(*max) + "\"" : std::string()) + ">" + latency(max) +
         "</td><td class=\"num\">" + count(s, "overflows") + "</td><td class=\"num\">" + esc(missed_periods_text(s)) + "</td></tr>";
}

// Scalar facts of one plugin, flattened to dotted keys (arrays such as argv left out).
void flat_facts(std::string& out, const std::string& prefix, const json& j, int depth) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it.value().is_object()) {
      if (depth < 3) flat_facts(out, key, it.value(), depth + 1);
    } else if (!it.value().is_array() && !it.value().is_null()) {
      out += "<tr><th>" + esc(key) + "</th><td>" +
             esc(it.value().is_string() ? it.value().get<std::string>() : it.value().dump()) + "</td></tr>";
    }
  }
}

void facts_details(std::string& out, const Run& run, const Cell& c) {
  const json& r = *c.result;
  out += "<details class=\"facts\"><summary>host facts, plugins and timings</summary><table class=\"facts\">";
  const json& plugins = member(r, "plugins");
  for (const char* kind : {"backend", "workload", "probe"}) {
    const json& p = member(plugins, kind);
    if (!p.is_object()) continue;
    std::string text = text_of(p, "plugin") + " " + text_of(p, "version") + " (instance " + text_of(p, "instance") +
                       (p.contains("where") ? ", where " + text_of(p, "where") : "") + ")";
    out += "<tr><th>" + std::string(kind) + " plugin</th><td>" + esc(text) + "</td></tr>";
  }
  // Usually the run's host: said in one row instead of repeated per cell.
  const json& host_facts = member(r, "host_facts");
  std::string host = text_of(member(r, "cell"), "host");
  const json& run_host = member(member((c.stored ? c.stored : run.stored)->run, "hosts"), host.c_str());
  if (host_facts.is_object() && host_facts == run_host)
    out += "<tr><th>host</th><td>" + esc(host) + ": as in <a href=\"#system\">System</a> (" +
           esc(text_of(host_facts, "kernel_release")) + ", " + esc(text_of(host_facts, "preempt_model")) + ")</td></tr>";
  else
    flat_facts(out, "host", host_facts, 1);
  const json& facts = member(r, "facts");
  for (const char* kind : {"backend", "workload", "probe"}) flat_facts(out, kind, member(facts, kind), 1);
  flat_facts(out, "timings", member(r, "timings"), 1);
  out += "</table></details>";
}

// The tail model of every measured cell, and how long a run must be to
// support each max bound (docs/statistics.md).
void tails_section(std::string& out, const Run& run, bool enabled) {
  std::string rows, lengths;
  const auto tails = run_tails(run, enabled);
  for (const auto& c : run.cells) {
    const auto& tail = tails[static_cast<std::size_t>(c.index)];
    if (!tail) continue;
    // The cell's row (all CPUs), then one row per CPU marked with it.
    auto add = [&](const TailRow& row, const std::string* cpu) {
      rows += "<tr data-cell-id=\"" + esc(c.id) + "\"" + (cpu ? " class=\"cpu\" data-cpu=\"" + esc(*cpu) + "\"" : std::string()) +
              "><td>" + (cpu ? "CPU " + esc(*cpu) : cell_link(run, c)) + "</td><td>" + esc(row.model) +
              "</td><td class=\"num\">" + esc(row.threshold) + "</td><td class=\"num\">" + esc(row.exceedances) +
              "</td><td class=\"num\">" + esc(row.gof_p) + "</td><td class=\"num\">" + esc(row.rl1h) +
              "</td><td class=\"num\">" + esc(row.rl24h) + "</td><td>" + esc(row.bounds) + "</td></tr>";
    };
    const TailRow row = tail_row(*tail);
    add(row, nullptr);
    for (const auto& [cpu, fit] : tail->per_cpu) add(tail_row(CellTail{fit, {}, {}}), &cpu);
    for (const auto& s : row.run_lengths) lengths += "<li>" + esc(c.id) + ": " + esc(s) + "</li>";
  }
  if (rows.empty()) return;
  out += "<section id=\"tails\"><h2>Tails</h2><p class=\"small\">Peaks over threshold (generalised Pareto) fitted to each "
         "cell's merged histogram and to each CPU's (the rows below the cell), with a chi-square test of fit; return levels (the worst case to expect in 1 h and 24 h "
         "at this period) with 95% intervals; where the fit is rejected or the tail too thin, the empirical maximum "
         "(docs/statistics.md).</p><table class=\"tails\"><tr><th>cell</th><th>model</th><th class=\"num\">threshold</th>"
         "<th class=\"num\">exceedances</th><th class=\"num\">fit p</th><th class=\"num\">worst in 1 h</th>"
         "<th class=\"num\">worst in 24 h</th><th>bound exceeded per hour</th></tr>" +
         rows + "</table>";
  if (!lengths.empty()) out += "<h3>How long to run</h3><ul class=\"run-lengths\">" + lengths + "</ul>";
  out += "</section>";
}

void decomposition_section(std::string& out, const Run& run) {
  auto groups = decompose_run(run);
  if (groups.empty()) return;
  out += "<section id=\"decomposition\"><h2>Latency decomposition</h2><p class=\"small\">" + esc(kDecompositionMethod) +
         "</p>";
  std::vector<std::string> backends;
  for (const auto& g : groups)
    if (std::find(backends.begin(), backends.end(), g.backend) == backends.end()) backends.push_back(g.backend);
  for (const auto& b : backends) {
    std::vector<const GroupDecomposition*> mine;
    for (const auto& g : groups)
      if (g.backend == b) mine.push_back(&g);
    std::string accel = accelerators(run, b);
    out += "<h3>" + esc(b.empty() ? "(no backend axis)" : b) +
           (accel.empty() || accel == "kvm" ? "" : " <span class=\"small\">(" + esc(accel) + ")</span>") + "</h3>";
    std::string slops;
    for (const auto* g : mine)
      if (g->slop) {
        std::string label;
        for (const auto& [k, v] : g->axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
        slops += "<li class=\"slop\" data-slop-ns=\"" + std::to_string(g->slop->slop_ns) + "\" data-slop-low-ns=\"" +
                 std::to_string(g->slop->low_ns) + "\" data-slop-high-ns=\"" + std::to_string(g->slop->high_ns) + "\">" + esc(label) +
                 ": " + esc(slop_text(*g)) + "</li>";
      }
    if (!slops.empty()) out += "<ul class=\"slops\">" + slops + "</ul>";
    out += breakdown_svg(run, b, mine);
    out += "<table class=\"decomposition\"><tr><th>cells</th><th>period</th><th>L_timer from</th><th class=\"num\">median "
           "shift</th><th class=\"num\">irq p50</th>";
    for (const char* s : {"p50", "p99", "max"})
      out += "<th class=\"num\">" + std::string(s) + ": L_timer + L_np</th>";
    out += "</tr>";
    for (const auto* g : mine)
      for (const auto& c : g->cells) {
        std::string label;
        for (const auto& [k, v] : g->axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
        const std::string slop_attr =
            g->slop && !c.d.irq_p50_ns ? " data-slop-ns=\"" + std::to_string(g->slop->slop_ns) + "\" data-period-ns=\"" +
                                             std::to_string(c.d.period_ns) + "\""
                                       : "";
        out += "<tr data-cell-id=\"" + esc(run.cells[static_cast<std::size_t>(c.cell)].id) + "\"" + slop_attr + "><td>" +
               cell_link(run, run.cells[static_cast<std::size_t>(c.cell)]) + " <span class=\"small\">" + esc(label) + "</span></td><td>" +
               esc(c.period) + "</td><td>" + esc(c.d.timer_source) + "</td><td class=\"num\">" + (c.d.offset_ns ? offset_text(*c.d.offset_ns) : "–") +
               "</td><td class=\"num\">" + latency(c.d.irq_p50_ns) + "</td>";
        for (const auto& st : c.d.stats)
          out += "<td class=\"num\">" + latency(st.timer_ns) + " + " + latency(st.np_ns) +
                 (st.irq_np_ns ? " <span class=\"small\">(" + latency(*st.irq_np_ns) + " before the IRQ)</span>" : "") + "</td>";
        out += "</tr>";
      }
    out += "</table>";
  }
  out += "</section>";
}

void cell_section(std::string& out, const Run& run, const Cell& c, const Run* baseline,
                  const std::map<std::string, const Cell*>& baseline_cells, bool link_artifacts) {
  std::string v = c.worst_verdict();
  out += "<section class=\"cell\" id=\"cell-" + std::to_string(c.index) + "\" data-cell-id=\"" + esc(c.id) +
         "\" data-status=\"" + esc(c.status) + "\"";
  if (c.max_ns) out += " data-max-ns=\"" + std::to_string(*c.max_ns) + "\"";
  out += "><h3>" + std::to_string(c.index + 1) + ". " + esc(c.id) + run_mark(run, c) + "<span class=\"badge\">" + esc(c.status) + "</span>";
  if (!v.empty()) out += "<span class=\"badge v-" + esc(v) + "\">gates: " + esc(v) + "</span>";
  out += "</h3><p class=\"axes\">";
  for (std::size_t i = 0; i < c.axes.size(); ++i)
    out += (i ? " · " : "") + esc(c.axes[i].first) + " = <b>" + esc(c.axes[i].second) + "</b>";
  out += "</p>";
  if (!c.error.empty()) {
    std::string phase = c.result ? text_of(*c.result, "error_phase") : "";
    out += "<p class=\"error\">" + esc(phase.empty() ? "" : phase + ": ") + esc(c.error) + "</p>";
  }
  if (!c.gates.empty()) {
    out += "<p class=\"cell-gates\">";
    for (const json* g : c.gates) {
      std::string gv = text_of(*g, "verdict");
      out += "<span class=\"badge v-" + esc(gv) + "\">" + esc(text_of(*g, "gate")) + ": " + esc(gv) + "</span> ";
      if (gv != "pass" && !text_of(*g, "message").empty()) out += esc(text_of(*g, "message")) + " ";
    }
    out += "</p>";
  }
  auto found = baseline_cells.find(c.id);
  const Cell* base_cell = found == baseline_cells.end() ? nullptr : found->second;
  for (const auto& s : c.series) {
    out += "<div class=\"series\" data-series=\"" + esc(s.name) + "\">";
    if (c.series.size() > 1) out += "<h4>" + esc(s.name) + "</h4>";
    if (s.merged || !s.per_cpu.empty()) {
      out += "<table class=\"stats\"><tr><th>CPU</th><th class=\"num\">samples</th><th class=\"num\">min</th><th class=\"num\">"
             "mean</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th>"
             "<th class=\"num\">p99.99</th><th class=\"num\">max</th><th class=\"num\">overflows</th><th class=\"num\">missed "
             "periods</th></tr>";
      if (s.merged) stats_row(out, "all", *s.merged);
      for (const auto& [cpu, doc] : s.per_cpu) stats_row(out, cpu, *doc);
      out += "</table>";
    }
    auto merged = s.merged ? decode_histogram(member(*s.merged, "histogram")) : std::nullopt;
    if (merged) {
      std::vector<HistogramData> cpus;
      if (s.per_cpu.size() > 1 && s.per_cpu.size() <= 8)
        for (const auto& [cpu, doc] : s.per_cpu)
          if (auto h = decode_histogram(member(*doc, "histogram"))) cpus.push_back(std::move(*h));
      std::optional<HistogramData> base;
      if (base_cell)
        for (const auto& bs : base_cell->series)
          if (bs.name == s.name && bs.merged) base = decode_histogram(member(*bs.merged, "histogram"));
      std::vector<CcdfLine> lines;
      lines.push_back({"all CPUs", "merged", &*merged});
      if (cpus.size() == s.per_cpu.size())
        for (std::size_t i = 0; i < cpus.size(); ++i)
          lines.push_back({"CPU " + s.per_cpu[i].first, "cpu cpu" + std::to_string(i % 8), &cpus[i]});
      if (base) lines.push_back({"baseline " + baseline->run_id, "baseline", &*base});
      std::string attr = "data-cell-id=\"" + esc(c.id) + "\" data-series=\"" + esc(s.name) + "\"";
      out += "<div class=\"plots\">" + histogram_svg(*merged, "class=\"plot histogram\" " + attr) +
             ccdf_svg(lines, "class=\"plot ccdf\" " + attr) + "</div>";
    }
    out += "</div>";
  }
  out += cell_traces_html(run, c, link_artifacts);
  if (c.result) {
    const json& warnings = member(*c.result, "warnings");
    if (warnings.is_array() && !warnings.empty()) {
      out += "<details class=\"warnings\"><summary>" + std::to_string(warnings.size()) + " warning" +
             (warnings.size() == 1 ? "" : "s") + "</summary><ul>";
      for (const auto& w : warnings) out += "<li>" + esc(w.is_string() ? w.get<std::string>() : w.dump()) + "</li>";
      out += "</ul></details>";
    }
    facts_details(out, run, c);
  }
  out += "</section>";
}

}  // namespace

std::string html_page_start(const std::string& title, const std::string& extra_style) {
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         // Defence in depth: even a value that escaped escaping could not run or fetch anything.
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
         esc(title) + "</title><style>" + kStyle + extra_style + "</style></head><body>";
}

std::string render_html(const ReportInput& in) {
  const Run& run = *in.run;
  std::string out;
  out.reserve(64 * 1024 + run.cells.size() * 16 * 1024);
  out += html_page_start("vmlat report: " + run.plan_name + " — " + run.verdict.word);
  out += "<header class=\"verdict " + run.verdict.css() + "\" id=\"verdict\" data-verdict=\"" + esc(run.verdict.word) +
         "\"><h1>vmlat report: " + esc(run.plan_name) + "</h1><p class=\"word\">" + esc(run.verdict.word) + "</p><p>" +
         esc(run.verdict.detail) + "</p>";
  // System identity, one line, beside the verdict.
  std::string identity;
  const std::vector<const Run*> sources = run.runs();
  for (const Run* one : sources) {
    const json& hosts = member(one->stored->run, "hosts");
    if (hosts.is_object())
      for (auto it = hosts.begin(); it != hosts.end(); ++it) {
        const json& h = it.value();
        identity += (identity.empty() ? "" : "; ") + it.key() + ": " + host_identity(h);
      }
  }
  out += "<p class=\"identity\">" + esc(identity) + "</p><p>" + (run.merged() ? "runs " : "run ") + esc(run.run_id) +
         ", vmlat " + esc(run.vmlat_version) + ", " + esc(run.started) + "</p></header>";
  gates_section(out, run);
  if (in.comparison) comparison_section(out, *in.comparison);
  claims_section(out, run);
  seed_section(out, run);
  sweep_section(out, run);
  figures_section(out, run);
  decomposition_section(out, run);
  tails_section(out, run, in.tails);
  index_section(out, run);
  system_section(out, run);
  out += "<section id=\"cells\"><h2>Cell details</h2>";
  std::map<std::string, const Cell*> baseline_cells;
  if (in.baseline)
    for (const auto& b : in.baseline->cells) baseline_cells.emplace(b.id, &b);
  for (const auto& c : run.cells) cell_section(out, run, c, in.baseline, baseline_cells, in.link_artifacts);
  out += "</section><footer class=\"small\">vmlat report, self-contained: no script, nothing loaded from the network. "
         "Histograms: 1 µs bins on a log count axis. CCDF: P(latency &gt; x), log-log.</footer></body></html>\n";
  return out;
}

}  // namespace vmlat::report
