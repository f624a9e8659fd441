// The HTML report: verdict and system identity first, then the cells (the
// page's script writes them from the data of page_data.hpp: those that need
// attention first, an overview of the matrix, filters, the passes folded,
// each cell's statistics and plots drawn when it is opened), the gates, the
// comparison with a baseline, the seed study's tables, the period sweep,
// figures, decomposition, tails and the system (rteval's and OSADL's order:
// the answer, then the evidence). Static HTML stays small whatever the
// number of cells; what grows with it is data, read when it is needed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "base64.hpp"
#include "decompose.hpp"
#include "json_access.hpp"
#include "page_data.hpp"
#include "plots.hpp"
#include "report.hpp"
#include "sha256.hpp"
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
.filters{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center;margin:6px 0;font-size:13px}.filters select{max-width:16em}
.kind-filter label{margin-right:8px}.kind-filter label::before{content:"";display:inline-block;width:10px;height:10px;margin-right:3px;background:var(--k)}
.k-fail{--k:#b3261e}.k-regressed{--k:#e37400}.k-error{--k:#8a5a00}.k-pass{--k:#5b9a5e}.k-none{--k:#6f8fb3}.k-skipped{--k:#c8c8c8}
.overview{max-height:220px;overflow:auto;border:1px solid #eee;padding:4px;margin:4px 0}
.ov-group{display:flex;align-items:flex-start;gap:8px;margin:1px 0}.ov-label{flex:0 0 18em;font-size:11px;color:#444;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.ov-cells{display:flex;flex-wrap:wrap;gap:1px}a.ov{display:block;width:10px;height:10px;background:var(--k)}.dense a.ov{width:6px;height:6px}
.by-latency a.ov{background:var(--lat,#c8c8c8)}a.ov.out{opacity:.12}a.ov:hover{outline:2px solid #1d1d1f}
section.cell{margin:6px 0;padding:5px 10px}section.cell>details>summary{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
section.cell summary h3{display:inline;margin:0}.cell-sum{margin-left:10px}.cell-body{margin-top:6px}
details.passed-cells>summary{font-weight:600;margin:10px 0}.none-attention{color:#2f7d32;font-weight:600}
)";

// Up to this many cells everything is open from the start: the list of
// passed cells, each cell's plots, the passed gates and the tails.
constexpr std::size_t kSmallPage = 20;

// A section of many tables or figures (one per combination of a large
// plan's other axes: hundreds) is folded: folded, they cost the page
// nothing to lay out.
constexpr std::size_t kOpenParts = 12;
std::string fold_open(std::size_t parts, const char* what) {
  return "<details class=\"parts\"" + std::string(parts <= kOpenParts ? " open" : "") + "><summary>" + std::to_string(parts) + " " +
         what + (parts == 1 ? "" : "s") + "</summary>";
}

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
  // The passes are the page's script's to list, when asked (a run of a
  // thousand cells has thousands): open from the start only on a small page
  // where nothing else is listed.
  if (first_pass != rows.end())
    out += "<details class=\"passed\" data-fill=\"gates\"" +
           std::string(first_pass == rows.begin() && run.cells.size() <= kSmallPage ? " open" : "") + "><summary>" +
           std::to_string(rows.end() - first_pass) + " passed</summary></details>";
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
         "worst case (max) of the cells that fall there.</p>" + fold_open(tables.size(), "table");
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
  out += "</details></section>";
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

// The seed's figures (default_overlays) and the plan's: the histograms
// and CCDFs of several cells in one plot each, drawn by the page's script
// from the cells' histograms when the figure comes into view.
void figures_section(std::string& out, const PageData& data) {
  if (data.figures.empty()) return;
  out += "<section id=\"figures\"><h2>Figures</h2><p class=\"small\">" +
         std::string(data.figures.front().kind == "plan" ? "The figures the plan chooses ([[report.figure]]). " : "") +
         (data.default_figures ? "Cells overlaid as in the seed study's figures: per backend its kernel combinations without and with "
                                 "stress, per sweep its periods. "
                               : "") +
         "Histograms as outlines (1 µs bins, log count), CCDFs log-log.</p>" + fold_open(data.figures.size(), "figure");
  for (const auto& f : data.figures) {
    if (!f.drawn) {
      // A plan's figure is shown even so: its author asked for it.
      out += "<figure class=\"overlay-empty\" data-kind=\"plan\" data-cells=\"" + esc(f.ids) + "\"><figcaption>" + esc(f.title) +
             "</figcaption><p class=\"small\">" + std::to_string(f.lines) +
             " measured cell(s) match this figure's cells: nothing to overlay.</p></figure>";
      continue;
    }
    out += "<figure class=\"overlay\" data-kind=\"" + esc(f.kind) + "\" data-draw=\"" + esc(f.draw) + "\" data-cells=\"" + esc(f.ids) +
           "\" data-figure=\"" + std::to_string(f.spec) + "\"><figcaption>" + esc(f.title) +
           (f.left_out ? " <span class=\"small\">(" + std::to_string(f.left_out) + " more cells not drawn)</span>" : "") +
           "</figcaption><div class=\"plots\"></div></figure>";
  }
  out += "</details></section>";
}

// The tail model of every measured cell, and how long a run must be to
// support each max bound (docs/statistics.md): the rows are the page's
// script's to write when the table is unfolded (three a cell).
void tails_section(std::string& out, const Run& run, const json& tails) {
  if (tails.empty()) return;
  out += "<section id=\"tails\"><h2>Tails</h2><p class=\"small\">Peaks over threshold (generalised Pareto) fitted to each "
         "cell's merged histogram and to each CPU's (the rows below the cell), with a chi-square test of fit; return levels (the worst case to expect in 1 h and 24 h "
         "at this period) with 95% intervals; where the fit is rejected or the tail too thin, the empirical maximum "
         "(docs/statistics.md).</p><details class=\"tails\" data-fill=\"tails\"" +
         std::string(run.cells.size() <= kSmallPage ? " open" : "") + "><summary>the tail model of " + std::to_string(tails.size()) +
         " cell" + (tails.size() == 1 ? "" : "s") + "</summary></details></section>";
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

}  // namespace

std::string html_page_start(const std::string& title, const std::string& extra_style, std::string_view script) {
  // Defence in depth: even a value that escaped escaping could not run or
  // fetch anything; the page's own script runs by its hash alone.
  const std::string scripts = script.empty() ? "" : "; script-src 'sha256-" + base64(sha256_digest(script)) + "'";
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'" + scripts + "\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
         esc(title) + "</title><style>" + kStyle + extra_style + "</style></head><body>";
}

std::string render_html(const ReportInput& in) {
  const Run& run = *in.run;
  PageData data = page_data(in);
  data.index["small"] = run.cells.size() <= kSmallPage;
  const std::string_view script = report_page_script();
  std::string out;
  out.reserve(64 * 1024 + run.cells.size() * 4 * 1024);
  out += html_page_start("vmlat report: " + run.plan_name + " — " + run.verdict.word, {}, script);
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
  // The cells first, those that need attention at the top (the script
  // writes the section: docs/report.md, "The HTML page").
  out += "<section id=\"cells\"><h2>Cells</h2><noscript><p class=\"error\">The list of cells, the overview, the filters and "
         "the cells' plots are drawn by the page's script, which this viewer does not run: open the page in a browser, or "
         "read `vmlat report --format markdown`.</p></noscript></section>";
  gates_section(out, run);
  if (in.comparison) comparison_section(out, *in.comparison);
  claims_section(out, run);
  seed_section(out, run);
  sweep_section(out, run);
  figures_section(out, data);
  decomposition_section(out, run);
  tails_section(out, run, data.shared["tails"]);
  system_section(out, run);
  out += data.timelines;
  out += "<footer class=\"small\">vmlat report, self-contained: one script of its own, nothing loaded from the network. "
         "Histograms: 1 µs bins on a log count axis. CCDF: P(latency &gt; x), log-log.</footer>";
  out += page_data_html(data);
  out += "<script>";
  out += script;
  out += "</script></body></html>\n";
  return out;
}

}  // namespace vmlat::report
