// Markdown (a CI job summary or merge-request comment) and JSON renderings of
// the report; html.cpp has the HTML page.
#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "decompose.hpp"
#include "json_access.hpp"
#include "tails.hpp"
#include "text_escape.hpp"
#include "host_evidence.hpp"
#include "traces.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {

std::string md(std::string_view s) { return markdown_escape(s); }

std::string latency(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_number_integer() ? format_latency(std::chrono::nanoseconds(v.get<long long>())) : std::string("–");
}

std::string entry_text(const Run& run, const SeedEntry* e) {
  if (!e) return "–";
  auto parts = entry_by_run(run, *e);
  std::string s;
  for (const auto& [run_id, p] : parts) {  // the same cell of two runs: shown twice
    if (!s.empty()) s += " · ";
    if (!p.worst_ns) s += md(run.cells[static_cast<std::size_t>(p.cells.front())].status);
    else s += worst_case_text(*p.worst_ns);
    if (p.worst_ns && p.not_measured) s += " (" + std::to_string(p.not_measured) + " not measured)";
    if (parts.size() > 1) s += " (run " + md(run_id) + ")";
  }
  return s;
}

// "a1b2 (also in c3d4)": a merged report's cell's run.
std::string run_text(const Cell& c) {
  std::string s = c.run_id;
  for (std::size_t i = 0; i < c.also_in.size(); ++i) s += (i ? ", " : " (also in ") + c.also_in[i];
  return s + (c.also_in.empty() ? "" : ")");
}

const char* emoji(const std::string& css) {
  if (css == "pass") return "✅";
  if (css == "fail") return "❌";
  if (css == "error") return "⚠️";
  return "⏸️";
}

int cell_rank(const Cell& c) {
  std::string v = c.worst_verdict();
  if (v == "fail") return 0;
  if (v == "error" || (!c.measured() && c.status != "skipped")) return 1;
  return 2;
}

json axes_json(const std::vector<std::pair<std::string, std::string>>& axes) {
  json a = json::object();
  for (const auto& [k, v] : axes) a[k] = v;
  return a;
}

json entry_json(const Run& run, const SeedEntry& e) {
  json ids = json::array();
  for (int i : e.cells) ids.push_back(run.cells[static_cast<std::size_t>(i)].id);
  json j{{"max_ns", e.worst_ns ? json(*e.worst_ns) : json(nullptr)}, {"cells", ids}, {"not_measured", e.not_measured}};
  auto parts = entry_by_run(run, e);
  if (parts.size() > 1) {
    j["by_run"] = json::array();
    for (const auto& [run_id, p] : parts) {
      json one = entry_json(run, p);
      one["run_id"] = run_id;
      j["by_run"].push_back(one);
    }
  }
  return j;
}

// The overlay figures the HTML page draws: the plan's, then the defaults.
json figures_json(const Run& run) {
  auto overlays = plan_overlays(run);
  if (default_figures_wanted(run))
    for (auto& o : default_overlays(run)) overlays.push_back(std::move(o));
  json out = json::array();
  for (const auto& o : overlays) {
    json lines = json::array();
    for (const auto& l : o.lines) lines.push_back(json{{"label", l.label}, {"cell", run.cells[static_cast<std::size_t>(l.cell)].id},
                                                       {"run_id", run.cells[static_cast<std::size_t>(l.cell)].run_id}});
    out.push_back(json{{"kind", o.kind}, {"title", o.title}, {"draw", o.draw}, {"lines", lines}, {"left_out", o.left_out}});
  }
  return out;
}

// Per cell whose worst wake-ups the host's samples cover: a short table of
// the worst ones with what the host did to that vCPU then (the HTML page's
// "the host, same interval" column); the rest stay in result.json and the
// HTML page.
void host_evidence_markdown(std::ostream& out, const Run& run) {
  constexpr std::size_t kRows = 5;
  bool head = false;
  for (const auto& c : run.cells) {
    if (!c.result) continue;
    const json& spikes = member(*c.result, "spikes");
    if (!spikes.is_array() || spikes.empty()) continue;
    const auto evidence = cell_spike_evidence(run, c);
    if (std::none_of(evidence.begin(), evidence.end(), [](const auto& e) { return e.has_value(); })) continue;
    if (!head)
      out << "### Worst wake-ups and the host\n\nWhat the host did to the spike's vCPU thread in the same interval, "
             "from the backend's samples (host-evidence.jsonl).\n\n";
    head = true;
    out << "#### " << md(c.id) << "\n\n| # | CPU | latency | run-queue wait | the host, same interval |\n|---:|---:|---:|---:|---|\n";
    std::size_t i = 0;
    for (const auto& s : spikes) {
      if (i >= kRows) break;
      const auto& e = i < evidence.size() ? evidence[i] : std::nullopt;
      ++i;
      const auto lat = integer_at(s, "latency_ns");
      const auto cpu = integer_at(s, "cpu");
      out << "| " << i << " | " << (cpu ? std::to_string(*cpu) : "–") << " | "
          << (lat ? format_latency(std::chrono::nanoseconds(*lat)) : "–") << " | "
          << (e ? format_latency(std::chrono::nanoseconds(e->wait_ns)) : "–") << " | "
          << (e ? md(e->sentence) : std::string("not covered by the host's samples")) << " |\n";
    }
    if (spikes.size() > kRows) out << "\n" << spikes.size() - kRows << " more in result.json and the HTML report.\n";
    out << "\n";
  }
}

json claims_json(const Run& run) {
  json out = json::array();
  for (const auto& e : run.claims) out.push_back(expect_json(e));
  return out;
}

}  // namespace

std::string render_markdown(const ReportInput& in) {
  const Run& run = *in.run;
  std::ostringstream out;
  out << "## " << emoji(run.verdict.css()) << " vmlat " << md(run.plan_name) << ": **" << run.verdict.word << "** — "
      << md(run.verdict.detail) << "\n\n";
  std::string identity;
  const std::vector<const Run*> sources = run.runs();
  for (const Run* one : sources) {
    const json& hosts = member(one->stored->run, "hosts");
    if (hosts.is_object())
      for (auto it = hosts.begin(); it != hosts.end(); ++it) identity += (identity.empty() ? "" : "; ") + md(host_identity(it.value()));
  }
  if (run.merged()) {
    out << "Merged from " << sources.size() << " runs:";
    for (const Run* one : sources) out << " " << md(one->run_id) << " (" << md(one->verdict.word) << ")";
    out << "\n\n";
  }
  out << (run.merged() ? "Runs " : "Run ") << md(run.run_id) << " · vmlat " << md(run.vmlat_version) << " · " << identity << " · " << run.measured
      << "/" << run.cells.size() << " cells measured · gates: " << run.gates.pass << " passed, " << run.gates.fail
      << " failed, " << run.gates.error << " not evaluated, " << run.gates.skipped << " skipped\n\n";

  // Gates that did not pass, failures first; passes are only counted.
  std::vector<std::pair<const Cell*, const json*>> gates;
  for (const auto& c : run.cells)
    for (const json* g : c.gates)
      if (text_of(*g, "verdict") != "pass") gates.emplace_back(&c, g);
  std::stable_sort(gates.begin(), gates.end(), [](const auto& a, const auto& b) {
    auto rank = [](const std::string& v) { return v == "fail" ? 0 : v == "error" ? 1 : 2; };
    return rank(text_of(*a.second, "verdict")) < rank(text_of(*b.second, "verdict"));
  });
  if (!gates.empty()) {
    out << "### Gates not passed\n\n| verdict | cell | gate | value | bound | exceeded by | message |\n|---|---|---|---:|---:|---:|---|\n";
    for (const auto& [c, g] : gates) {
      std::string v = text_of(*g, "verdict");
      bool measured = v == "fail" || v == "pass";
      out << "| " << (v == "fail" ? "**fail**" : md(v)) << " | " << md(c->id) << " | " << md(text_of(*g, "gate")) << " ("
          << md(text_of(*g, "stat")) << ") | " << (measured ? latency(*g, "value_ns") : "–") << " | "
          << (measured ? latency(*g, "bound_ns") : "–") << " | " << (v == "fail" ? latency(*g, "excess_ns") : "–") << " | "
          << md(text_of(*g, "message")) << " |\n";
    }
    out << "\n";
  }
  if (in.comparison) out << compare_markdown(*in.comparison) << "\n";

  if (!run.claims.empty()) {
    out << "### Claims\n\n| verdict | claim | stat | smaller | larger | pairs | why |\n|---|---|---|---|---|---:|---|\n";
    for (const auto& e : run.claims)
      out << "| " << (e.verdict == "violated" ? "**violated**" : e.verdict) << (e.spec.gate ? " (gate)" : "") << " | " << md(e.spec.name)
          << " | " << md(e.spec.stat) << " | " << md(selector_text(e.spec.smaller)) << " | " << md(selector_text(e.spec.larger))
          << " | " << e.pairs.size() << " | " << md(e.reason) << " |\n";
    out << "\n";
  }

  for (const auto& t : seed_tables(run)) {
    std::string caption;
    for (const auto& [k, v] : t.fixed) caption += (caption.empty() ? "" : ", ") + k + " = " + v;
    out << "### Worst cases" << (caption.empty() ? "" : ": " + md(caption)) << "\n\n| kernels |";
    for (const auto& c : t.columns) {
      std::string accel = accelerators(run, c.backend);
      out << " " << (c.machine.empty() ? "" : md(c.machine) + ": ") << md(c.backend) << (accel.empty() || accel == "kvm" ? "" : " (" + md(accel) + ")") << ", " << md(c.label()) << " |";
    }
    out << "\n|---|";
    for (std::size_t i = 0; i < t.columns.size(); ++i) out << "---:|";
    out << "\n";
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
      out << "| " << md(t.rows[r]) << " |";
      for (std::size_t c = 0; c < t.columns.size(); ++c) {
        auto it = t.entries.find({r, c});
        out << " " << entry_text(run, it == t.entries.end() ? nullptr : &it->second) << " |";
      }
      out << "\n";
    }
    out << "\n";
  }
  auto sweep = period_sweep(run);
  if (!sweep.periods.empty()) {
    out << "### Period sweep (worst cases)\n\n| cells |";
    for (const auto& p : sweep.periods) out << " " << md(p) << " |";
    out << "\n|---|";
    for (std::size_t i = 0; i < sweep.periods.size(); ++i) out << "---:|";
    out << "\n";
    for (const auto& row : sweep.rows) {
      std::string label;
      for (const auto& [k, v] : row.axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
      out << "| " << md(label) << " |";
      for (const auto& p : sweep.periods) {
        auto it = row.by_period.find(p);
        out << " " << entry_text(run, it == row.by_period.end() ? nullptr : &it->second) << " |";
      }
      out << "\n";
    }
    out << "\n";
  }

  auto decomposition = decompose_run(run);
  if (!decomposition.empty()) {
    out << "### Latency decomposition\n\n" << md(kDecompositionMethod) << "\n\n";
    bool slops = false;
    for (const auto& g : decomposition)
      if (g.slop) {
        std::string label;
        for (const auto& [k, v] : g.axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
        out << "- " << md(label) << ": " << md(slop_text(g)) << "\n";
        slops = true;
      }
    out << (slops ? "\n" : "")
        << "| cells | period | L_timer from | median shift | p50: L_timer + L_np | p99: L_timer + L_np | max: L_timer + L_np |\n"
           "|---|---|---|---:|---:|---:|---:|\n";
    for (const auto& g : decomposition)
      for (const auto& c : g.cells) {
        std::string label;
        for (const auto& [k, v] : g.axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
        out << "| " << md(label) << " | " << md(c.period) << " | " << md(c.d.timer_source) << " | "
            << (c.d.offset_ns ? offset_text(*c.d.offset_ns) : "–") << " |";
        for (const auto& b : c.d.stats) {
          out << " " << format_latency(std::chrono::nanoseconds(b.timer_ns)) << " + " << format_latency(std::chrono::nanoseconds(b.np_ns));
          if (b.irq_np_ns) out << " (" << format_latency(std::chrono::nanoseconds(*b.irq_np_ns)) << " before the IRQ)";
          out << " |";
        }
        out << "\n";
      }
    out << "\n";
  }

  // The tail model of every measured cell (docs/statistics.md, "Tail model"),
  // all CPUs together and then each CPU.
  const auto tails = run_tails(run, in.tails);
  bool tail_head = false;
  for (const auto& c : run.cells) {
    const auto& tail = tails[static_cast<std::size_t>(c.index)];
    if (!tail) continue;
    if (!tail_head)
      out << "### Tails (peaks over threshold; return levels with 95% intervals)\n\n"
             "| cell | model | threshold | exceedances | fit p | worst in 1 h | worst in 24 h | bound exceeded per hour |\n"
             "|---|---|---:|---:|---:|---:|---:|---|\n";
    tail_head = true;
    auto line = [&](const std::string& name, const TailRow& row) {
      out << "| " << md(name) << " | " << md(row.model) << " | " << row.threshold << " | " << row.exceedances << " | "
          << row.gof_p << " | " << row.rl1h << " | " << row.rl24h << " | " << md(row.bounds) << " |\n";
    };
    line(c.id, tail_row(*tail));
    for (const auto& [cpu, fit] : tail->per_cpu) line(c.id + " CPU " + cpu, tail_row(CellTail{fit, {}, {}}));
  }
  if (tail_head) out << "\n";
  bool length_head = false;
  for (const auto& c : run.cells) {
    const auto& tail = tails[static_cast<std::size_t>(c.index)];
    if (!tail) continue;
    for (const auto& s : tail_row(*tail).run_lengths) {
      if (!length_head) out << "### How long to run\n\n";
      length_head = true;
      out << "- " << md(c.id) << ": " << md(s) << "\n";
    }
  }
  if (length_head) out << "\n";

  std::vector<const Cell*> cells;
  for (const auto& c : run.cells) cells.push_back(&c);
  std::stable_sort(cells.begin(), cells.end(), [](const Cell* a, const Cell* b) { return cell_rank(*a) < cell_rank(*b); });
  out << "### Cells\n\n| cell |" << (run.merged() ? " run |" : "")
      << " status | samples | p50 | p99 | p99.9 | max | overflows | missed | gates |\n|---|" << (run.merged() ? "---|" : "")
      << "---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const Cell* c : cells) {
    const json* merged = c->series.empty() ? nullptr : c->series.front().merged;
    const json& s = merged ? member(*merged, "stats") : member(json(), "");
    std::string v = c->worst_verdict();
    out << "| " << md(c->id) << " | " << (run.merged() ? md(run_text(*c)) + " | " : "") << md(c->status) << (c->error.empty() ? "" : ": " + md(c->error)) << " | "
        << (s.is_object() ? text_of(s, "samples") : "–") << " | " << latency(s, "p50_ns") << " | " << latency(s, "p99_ns")
        << " | " << latency(s, "p99_9_ns") << " | " << latency(s, "max_ns") << " | "
        << (s.is_object() ? text_of(s, "overflows") : "–") << " | " << missed_periods_text(s)
        << " | " << (v == "fail" ? "**fail**" : v.empty() ? "–" : md(v)) << " |\n";
  }
  std::ostringstream evidence;
  host_evidence_markdown(evidence, run);
  if (!evidence.str().empty()) out << "\n" << evidence.str();
  return out.str();
}

json render_json(const ReportInput& in) {
  const Run& run = *in.run;
  json cells = json::array();
  json failures = json::array();
  const auto tails = run_tails(run, in.tails);
  for (const auto& c : run.cells) {
    json series = json::array();
    for (const auto& s : c.series) {
      json per_cpu = json::object();
      for (const auto& [cpu, doc] : s.per_cpu) per_cpu[cpu] = member(*doc, "stats");
      series.push_back(json{{"name", s.name}, {"stats", s.merged ? member(*s.merged, "stats") : json(nullptr)}, {"per_cpu", per_cpu}});
    }
    json gates = json::array();
    for (const json* g : c.gates) {
      gates.push_back(*g);
      if (text_of(*g, "verdict") != "pass") {
        json f = *g;
        f["cell"] = c.id;
        failures.push_back(f);
      }
    }
    // Trace files with their path in the run directory (null: not a safe file of this cell).
    json traces = json::array();
    if (c.result)
      for (const auto& t : member(*c.result, "traces"))
        if (t.is_string()) {
          auto link = artifact_link(run, c, t.get<std::string>());
          traces.push_back(json{{"name", t}, {"path", link ? json(*link) : json(nullptr)}});
        }
    const json& spikes = c.result ? member(*c.result, "spikes") : member(json(), "");
    const auto& tail = tails[static_cast<std::size_t>(c.index)];
    // Per spike, what the host did to its vCPU then (null: not covered).
    json evidence = json::array();
    for (const auto& e : cell_spike_evidence(run, c)) evidence.push_back(e ? spike_evidence_json(*e) : json(nullptr));
    cells.push_back(json{{"index", c.index + 1}, {"id", c.id}, {"run_id", c.run_id}, {"also_in", c.also_in},
                         {"host", c.host}, {"machine", c.machine}, {"axes", axes_json(c.axes)}, {"status", c.status},
                         {"error", c.error.empty() ? json(nullptr) : json(c.error)},
                         {"max_ns", c.max_ns ? json(*c.max_ns) : json(nullptr)}, {"series", series}, {"gates", gates},
                         {"traces", traces}, {"spikes", spikes.is_array() ? spikes : json::array()},
                         {"host_evidence", evidence},
                         {"tail", tail ? tail_json(*tail) : json(nullptr)}});
  }
  std::stable_sort(failures.begin(), failures.end(), [](const json& a, const json& b) {
    auto rank = [](const json& g) { std::string v = g.value("verdict", ""); return v == "fail" ? 0 : v == "error" ? 1 : 2; };
    return rank(a) < rank(b);
  });
  json seed = json::array();
  for (const auto& t : seed_tables(run)) {
    json columns = json::array();
    for (const auto& c : t.columns) columns.push_back(json{{"backend", c.backend}, {"workload", c.workload}, {"machine", c.machine}, {"label", c.label()}});
    json entries = json::array();
    for (const auto& [key, e] : t.entries) {
      json j = entry_json(run, e);
      j["row"] = t.rows[key.first];
      j["column"] = key.second;
      entries.push_back(j);
    }
    seed.push_back(json{{"fixed", axes_json(t.fixed)}, {"rows", t.rows}, {"columns", columns}, {"entries", entries}});
  }
  json sweep_json = nullptr;
  auto sweep = period_sweep(run);
  if (!sweep.periods.empty()) {
    json rows = json::array();
    for (const auto& r : sweep.rows) {
      json by = json::object();
      for (const auto& [p, e] : r.by_period) by[p] = entry_json(run, e);
      rows.push_back(json{{"axes", axes_json(r.axes)}, {"periods", by}});
    }
    sweep_json = json{{"periods", sweep.periods}, {"rows", rows}};
  }
  const json& r = run.stored->run;
  json runs = json::array();
  const std::vector<const Run*> sources = run.runs();
  for (const Run* one : sources)
    runs.push_back(json{{"dir", one->stored->dir}, {"run_id", one->run_id}, {"plan", one->plan_name}, {"status", one->status},
                        {"verdict", one->verdict.word}, {"hosts", member(one->stored->run, "hosts")}});
  return json{{"schema", "vmlat-report/1"},
              {"run", {{"dir", run.stored->dir}, {"run_id", run.run_id}, {"plan", run.plan_name}, {"status", run.status},
                       {"exit_code", run.exit_code ? json(*run.exit_code) : json(nullptr)}, {"started", run.started},
                       {"finished", run.finished}, {"vmlat_version", run.vmlat_version}, {"hosts", member(r, "hosts")}}},
              {"runs", runs},
              {"verdict", {{"word", run.verdict.word}, {"detail", run.verdict.detail}}},
              {"expects", claims_json(run)},
              {"gates", {{"pass", run.gates.pass}, {"fail", run.gates.fail}, {"error", run.gates.error},
                         {"skipped", run.gates.skipped}, {"not_passed", failures}}},
              {"seed_tables", seed},
              {"figures", figures_json(run)},
              {"period_sweep", sweep_json},
              {"decomposition", decomposition_json(run, decompose_run(run))},
              {"cells", cells},
              {"comparison", in.comparison ? compare_json(*in.comparison) : json(nullptr)}};
}

}  // namespace vmlat::report
