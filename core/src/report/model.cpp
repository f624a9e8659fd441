#include "model.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "json_access.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace {

std::optional<long long> max_of(const json* series_doc) {
  if (!series_doc) return std::nullopt;
  const json* stats = object_at(*series_doc, "stats");
  if (!stats || !stats->contains("max_ns") || !(*stats)["max_ns"].is_number_integer()) return std::nullopt;
  if (stats->value("samples", 0LL) <= 0) return std::nullopt;
  return (*stats)["max_ns"].get<long long>();
}

long long period_ns(const std::string& text) {
  auto d = parse_duration(text);
  return d ? d->count() : -1;
}

int verdict_rank(const std::string& v) {
  if (v == "fail") return 4;
  if (v == "error") return 3;
  if (v == "flaky") return 2;  // failed, then passed on a retest
  if (v == "skipped") return 2;
  if (v == "pass") return 1;
  return 0;
}

void add_to_entry(SeedEntry& e, const Cell& c) {
  e.cells.push_back(c.index);
  if (c.measured()) e.worst_ns = std::max(e.worst_ns.value_or(0), *c.max_ns);
  else ++e.not_measured;
}

// The claims of every run's plan, each once, over the cells measured.
std::vector<ExpectResult> judge_claims(const Run& r) {
  std::vector<ExpectSpec> specs;
  std::set<std::string> seen;
  for (const Run* one : r.runs()) {
    const json& entries = member(one->stored->run, "expects");
    if (!entries.is_array()) continue;
    for (const auto& entry : entries) {
      auto spec = expect_spec_from_json(entry);
      if (!spec) continue;
      ExpectResult as_stored{*spec, "", "", 0, 0, {}};
      if (seen.insert(expect_json(as_stored).dump()).second) specs.push_back(std::move(*spec));
    }
  }
  if (specs.empty()) return {};
  std::vector<ExpectCell> cells;
  for (const auto& c : r.cells)
    if (c.measured() && c.result)
      if (auto e = expect_cell(*c.result, r.merged() ? c.run_id : std::string(), c.axes)) cells.push_back(std::move(*e));
  return judge_expects(specs, cells);
}

// The verdict from the cells' gates and statuses, the claims and the run's status.
void judge(Run& r) {
  r.claims = judge_claims(r);
  int claims_failed = 0, held = 0, violated = 0;
  for (const auto& e : r.claims) {
    claims_failed += e.failed();
    held += e.verdict == "holds";
    violated += e.verdict == "violated";
  }
  int failing_cells = 0, unmeasured = 0, incomplete = 0;
  for (const auto& c : r.cells) {
    if (c.worst_verdict() == "fail") ++failing_cells;
    if (c.status == "infra-error" || (c.status == "measured" && !c.measured())) ++unmeasured;
    if (c.status == "interrupted" || c.status == "not-run" || c.status == "pending" || c.status == "running") ++incomplete;
  }
  auto plural = [](int n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); };
  if (r.gates.fail || claims_failed) {
    r.verdict = {"FAIL", r.gates.fail ? plural(r.gates.fail, "gate") + " failed in " + plural(failing_cells, "cell") : ""};
    if (claims_failed) r.verdict.detail += (r.gates.fail ? ", " : "") + plural(claims_failed, "gating claim") + " violated";
  } else if (unmeasured || r.gates.error) {
    std::string d;
    if (unmeasured) d = plural(unmeasured, "cell") + " not measured";
    if (r.gates.error) d += (d.empty() ? "" : ", ") + plural(r.gates.error, "gate") + " not evaluated";
    r.verdict = {"INFRA ERROR", d};
  } else if (incomplete || (r.status != "complete" && !r.status.empty())) {
    r.verdict = {"INCOMPLETE", "run " + (r.status.empty() ? std::string("?") : r.status) + ", " +
                                   plural(incomplete, "cell") + " interrupted or not run"};
  } else if (r.gates.total() == 0) {
    r.verdict = {"MEASURED", "no gates"};
  } else {
    r.verdict = {"PASS", plural(r.gates.pass, "gate") + " passed"};
  }
  if (r.gates.skipped) r.verdict.detail += ", " + plural(r.gates.skipped, "gate") + " skipped";
  if (r.gates.flaky) r.verdict.detail += ", " + plural(r.gates.flaky, "gate") + " flaky (failed, then passed on retest)";
  if (!r.claims.empty())
    r.verdict.detail += "; claims: " + std::to_string(held) + " hold, " + std::to_string(violated) + " violated, " +
                        std::to_string(static_cast<int>(r.claims.size()) - held - violated) + " inconclusive";
}

}  // namespace

std::vector<Series> cell_series(const json& result) {
  // One series from an object holding "merged" and "per_cpu": the result
  // itself (its default series) or an entry of its "series".
  auto read = [](const json& holder, std::string name) {
    Series s;
    s.name = std::move(name);
    s.merged = object_at(holder, "merged");
    if (const json* per_cpu = object_at(holder, "per_cpu")) {
      for (auto it = per_cpu->begin(); it != per_cpu->end(); ++it)
        if (it.value().is_object()) s.per_cpu.emplace_back(it.key(), &it.value());
      std::stable_sort(s.per_cpu.begin(), s.per_cpu.end(), [](const auto& a, const auto& b) {
        if (a.first.size() != b.first.size()) return a.first.size() < b.first.size();  // "2" before "10"
        return a.first < b.first;
      });
    }
    return s;
  };
  std::string default_name = text_of(result, "default_series");
  std::vector<Series> all{read(result, default_name.empty() ? kDefaultSeries : default_name)};
  if (const json* named = object_at(result, "series"))
    for (auto it = named->begin(); it != named->end(); ++it)
      if (it.value().is_object()) all.push_back(read(it.value(), it.key()));
  return all;
}

std::string Cell::axis(const std::string& name) const {
  for (const auto& [k, v] : axes)
    if (k == name) return v;
  return {};
}

std::string Cell::worst_verdict() const {
  std::string worst;
  for (const json* g : gates) {
    std::string v = text_of(*g, "verdict");
    if (verdict_rank(v) > verdict_rank(worst)) worst = v;
  }
  return worst;
}

std::string RunVerdict::css() const {
  if (word == "FAIL") return "fail";
  if (word == "INFRA ERROR") return "error";
  if (word == "INCOMPLETE") return "incomplete";
  return "pass";
}

Run make_run(const StoredRun& stored) {
  Run r;
  r.stored = &stored;
  const json& run = stored.run;
  r.run_id = text_of(run, "run_id");
  if (const json* plan = object_at(run, "plan")) {
    r.plan_name = text_of(*plan, "name");
    r.plan_description = text_of(*plan, "description");
  }
  r.status = text_of(run, "status");
  r.started = text_of(run, "started");
  r.finished = text_of(run, "finished");
  r.vmlat_version = text_of(run, "vmlat_version");
  if (run.contains("exit_code") && run["exit_code"].is_number_integer()) r.exit_code = run["exit_code"].get<int>();

  std::map<std::string, const json*> results;
  for (const auto& c : stored.cells)
    if (const json* cell = object_at(c, "cell")) results[text_of(*cell, "id")] = &c;
  const json& listed = run.contains("cells") && run["cells"].is_array() ? run["cells"] : json::array();
  for (const auto& entry : listed) {
    Cell c;
    c.index = static_cast<int>(r.cells.size());
    c.id = text_of(entry, "id");
    c.status = text_of(entry, "status");
    c.error = text_of(entry, "error");
    auto found = results.find(c.id);
    if (found != results.end()) {
      c.result = found->second;
      c.status = text_of(*c.result, "status");
      c.error = text_of(*c.result, "error");
    }
    const json* cell_doc = c.result ? object_at(*c.result, "cell") : nullptr;
    c.stored = &stored;
    c.run_id = r.run_id;
    c.host = text_of(cell_doc ? *cell_doc : entry, "host");
    if (const json* facts = c.result ? object_at(*c.result, "host_facts") : nullptr) {
      c.machine = text_of(*facts, "hostname");
      if (c.machine.empty()) c.machine = text_of(*facts, "cpu_model");
    }
    const json* axes = cell_doc ? object_at(*cell_doc, "axes") : object_at(entry, "axes");
    if (axes)
      for (auto it = axes->begin(); it != axes->end(); ++it)
        c.axes.emplace_back(it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
    if (c.result) {
      c.series = cell_series(*c.result);
      if (!c.series.empty()) c.max_ns = max_of(c.series.front().merged);
      if (c.result->contains("gates") && (*c.result)["gates"].is_array())
        for (const auto& g : (*c.result)["gates"])
          if (g.is_object()) c.gates.push_back(&g);
    }
    for (const json* g : c.gates) {
      std::string v = text_of(*g, "verdict");
      if (v == "pass") ++r.gates.pass;
      else if (v == "flaky") ++r.gates.flaky;
      else if (v == "fail") ++r.gates.fail;
      else if (v == "skipped") ++r.gates.skipped;
      else ++r.gates.error;
    }
    if (c.measured()) ++r.measured;
    if (c.result) {
      const json* facts = object_at(*c.result, "facts");
      std::string a = facts ? text_of(member(*facts, "backend"), "accelerator") : "";
      std::string& known = r.accelerators[c.axis("backend")];
      if (!a.empty() && ("/" + known + "/").find("/" + a + "/") == std::string::npos) known += (known.empty() ? "" : "/") + a;
    }
    r.cells.push_back(std::move(c));
  }

  judge(r);
  return r;
}

std::string host_kernel_label(const Cell& c) {
  std::string axis = c.axis("host_kernel");
  if (axis == "rt") return "RT";
  if (axis == "nrt") return "NRT";
  if (c.result)
    if (const json* facts = object_at(*c.result, "host_facts"))
      if (facts->contains("preempt_rt") && (*facts)["preempt_rt"].is_boolean())
        return (*facts)["preempt_rt"].get<bool>() ? "RT" : "NRT";
  return axis.empty() || axis == "any" ? "?" : axis;
}

std::string guest_kernel_label(const Cell& c) {
  for (const auto& [k, v] : c.axes)
    if (k == "guest_kernel") return v == "rt" ? "RT" : v == "nrt" ? "NRT" : v;
  if (c.result)
    if (const json* facts = object_at(*c.result, "facts"))
      if (const json* backend = object_at(*facts, "backend"))
        if (const json* guest = object_at(*backend, "guest"))
          if (const json* system = object_at(*guest, "system"))
            if (system->contains("preempt_rt") && (*system)["preempt_rt"].is_boolean())
              return (*system)["preempt_rt"].get<bool>() ? "RT" : "NRT";
  return {};
}

std::string seed_row_label(const Cell& c) {
  const std::string guest = guest_kernel_label(c);
  if (!guest.empty()) return host_kernel_label(c) + "/" + guest;
  std::string plugin = c.axis("backend");
  if (c.result)
    if (const json* plugins = object_at(*c.result, "plugins"))
      if (const json* backend = object_at(*plugins, "backend"))
        if (backend->contains("plugin") && (*backend)["plugin"].is_string()) plugin = (*backend)["plugin"].get<std::string>();
  if (plugin != "host") return host_kernel_label(c);
  bool dom0 = false;
  if (c.result)
    if (const json* facts = object_at(*c.result, "host_facts"))
      dom0 = facts->contains("xen_role") && (*facts)["xen_role"] == "dom0";
  return (dom0 ? "Dom0 (" : "Host (") + host_kernel_label(c) + ")";
}

Run merge_runs(std::vector<Run>& runs) {
  if (runs.size() == 1) return runs.front();
  Run m;
  if (runs.empty()) return m;
  // Two CI jobs of one plan started in the same second have one run id:
  // the later ones become "<id>#2", ... so that marks tell them apart.
  std::set<std::string> ids;
  for (Run& r : runs) {
    std::string id = r.run_id;
    for (int n = 2; !ids.insert(id).second; ++n) id = r.run_id + "#" + std::to_string(n);
    r.run_id = id;
    for (Cell& c : r.cells) c.run_id = id;
  }
  m.stored = runs.front().stored;
  auto join = [](std::string& to, const std::string& part) {
    if (!part.empty() && ("+" + to + "+").find("+" + part + "+") == std::string::npos) to += (to.empty() ? "" : "+") + part;
  };
  std::map<std::string, std::set<std::string>> runs_of;  // host and axes -> run ids
  auto key = [](const Cell& c) {  // axes in any order: two plans may list them differently
    auto axes = c.axes;
    std::sort(axes.begin(), axes.end());
    std::string k = c.host;
    for (const auto& [a, v] : axes) k += "\n" + a + "=" + v;
    return k;
  };
  std::set<std::string> machines;
  m.status = "complete";
  bool all_exit_codes = true;
  for (const Run& r : runs) {
    m.sources.push_back(&r);
    m.run_id += (m.run_id.empty() ? "" : " + ") + r.run_id;
    join(m.plan_name, r.plan_name);
    join(m.vmlat_version, r.vmlat_version);
    if (m.plan_description.empty()) m.plan_description = r.plan_description;
    if (m.status == "complete" && r.status != "complete") m.status = r.status;
    if (m.started.empty() || (!r.started.empty() && r.started < m.started)) m.started = r.started;
    if (r.finished > m.finished) m.finished = r.finished;
    if (!r.exit_code) all_exit_codes = false;
    else m.exit_code = std::max(m.exit_code.value_or(0), *r.exit_code);
    m.gates.pass += r.gates.pass, m.gates.fail += r.gates.fail, m.gates.error += r.gates.error;
    m.gates.skipped += r.gates.skipped, m.gates.flaky += r.gates.flaky;
    m.measured += r.measured;
    for (const auto& [backend, accel] : r.accelerators) {
      std::string& known = m.accelerators[backend];
      for (std::size_t at = 0; at <= accel.size();) {
        auto slash = std::min(accel.find('/', at), accel.size());
        std::string a = accel.substr(at, slash - at);
        if (!a.empty() && ("/" + known + "/").find("/" + a + "/") == std::string::npos) known += (known.empty() ? "" : "/") + a;
        at = slash + 1;
      }
    }
    for (const Cell& c : r.cells) {
      runs_of[key(c)].insert(c.run_id);
      if (!c.machine.empty()) machines.insert(c.machine);
      m.cells.push_back(c);
      m.cells.back().index = static_cast<int>(m.cells.size() - 1);
    }
  }
  for (Cell& c : m.cells) {
    for (const auto& id : runs_of[key(c)])
      if (id != c.run_id) c.also_in.push_back(id);
    // After the key: a twin is the same axes and host, whatever the machine.
    if (machines.size() > 1) c.axes.emplace_back("machine", c.machine.empty() ? "?" : c.machine);
  }
  if (!all_exit_codes) m.exit_code.reset();
  judge(m);
  return m;
}

std::vector<std::pair<std::string, SeedEntry>> entry_by_run(const Run& run, const SeedEntry& e) {
  std::vector<std::pair<std::string, SeedEntry>> parts;
  for (int i : e.cells) {
    const Cell& c = run.cells[static_cast<std::size_t>(i)];
    auto p = std::find_if(parts.begin(), parts.end(), [&](const auto& q) { return q.first == c.run_id; });
    if (p == parts.end()) p = parts.insert(parts.end(), {c.run_id, SeedEntry{}});
    add_to_entry(p->second, c);
  }
  return parts;
}

std::string accelerators(const Run& run, const std::string& backend) {
  auto it = run.accelerators.find(backend);
  return it == run.accelerators.end() ? std::string() : it->second;
}

std::string SeedColumn::label() const { return workload == "none" ? "no stress" : workload; }

std::vector<SeedTable> seed_tables(const Run& run) {
  static const std::set<std::string> placed = {"backend", "workload", "host_kernel", "guest_kernel", "machine"};
  std::vector<SeedTable> tables;
  for (const auto& c : run.cells) {
    if (c.axes.empty()) continue;
    std::vector<std::pair<std::string, std::string>> fixed;
    for (const auto& a : c.axes)
      if (!placed.count(a.first)) fixed.push_back(a);
    auto table = std::find_if(tables.begin(), tables.end(), [&](const SeedTable& t) { return t.fixed == fixed; });
    if (table == tables.end()) {
      tables.push_back(SeedTable{fixed, {}, {}, {}});
      table = tables.end() - 1;
    }
    const std::string row = seed_row_label(c);
    SeedColumn column{c.axis("backend"), c.axis("workload"), c.axis("machine")};
    auto r = std::find(table->rows.begin(), table->rows.end(), row);
    if (r == table->rows.end()) r = table->rows.insert(table->rows.end(), row);
    auto col = std::find_if(table->columns.begin(), table->columns.end(),
                            [&](const SeedColumn& k) {
                              return k.backend == column.backend && k.workload == column.workload && k.machine == column.machine;
                            });
    if (col == table->columns.end()) col = table->columns.insert(table->columns.end(), column);
    add_to_entry(table->entries[{static_cast<std::size_t>(r - table->rows.begin()), static_cast<std::size_t>(col - table->columns.begin())}], c);
  }
  // The seed's order: rows NRT/NRT, NRT/RT, RT/NRT, RT/RT, then bare metal
  // and Dom0; columns grouped by backend, "no stress" first.
  auto row_rank = [](const std::string& row) {
    static const std::vector<std::string> order = {"NRT/NRT",   "NRT/RT",     "RT/NRT",    "RT/RT", "Host (NRT)",
                                                   "Host (RT)", "Dom0 (NRT)", "Dom0 (RT)", "NRT",   "RT"};
    auto it = std::find(order.begin(), order.end(), row);
    return it == order.end() ? order.size() : static_cast<std::size_t>(it - order.begin());
  };
  for (auto& t : tables) {
    std::vector<std::size_t> row_order(t.rows.size()), col_order(t.columns.size());
    for (std::size_t i = 0; i < row_order.size(); ++i) row_order[i] = i;
    for (std::size_t i = 0; i < col_order.size(); ++i) col_order[i] = i;
    std::stable_sort(row_order.begin(), row_order.end(), [&](std::size_t a, std::size_t b) {
      auto ra = row_rank(t.rows[a]), rb = row_rank(t.rows[b]);
      return ra != rb ? ra < rb : t.rows[a] < t.rows[b];
    });
    std::vector<std::string> backends, machines;
    for (const auto& c : t.columns) {
      if (std::find(backends.begin(), backends.end(), c.backend) == backends.end()) backends.push_back(c.backend);
      if (std::find(machines.begin(), machines.end(), c.machine) == machines.end()) machines.push_back(c.machine);
    }
    std::stable_sort(col_order.begin(), col_order.end(), [&](std::size_t a, std::size_t b) {
      const auto& ca = t.columns[a];
      const auto& cb = t.columns[b];
      auto ma = std::find(machines.begin(), machines.end(), ca.machine) - machines.begin();
      auto mb = std::find(machines.begin(), machines.end(), cb.machine) - machines.begin();
      if (ma != mb) return ma < mb;
      auto ba = std::find(backends.begin(), backends.end(), ca.backend) - backends.begin();
      auto bb = std::find(backends.begin(), backends.end(), cb.backend) - backends.begin();
      if (ba != bb) return ba < bb;
      return (ca.workload == "none") > (cb.workload == "none");
    });
    SeedTable sorted{t.fixed, {}, {}, {}};
    for (auto i : row_order) sorted.rows.push_back(t.rows[i]);
    for (auto i : col_order) sorted.columns.push_back(t.columns[i]);
    for (auto& [key, entry] : t.entries) {
      auto r = std::find(row_order.begin(), row_order.end(), key.first) - row_order.begin();
      auto c = std::find(col_order.begin(), col_order.end(), key.second) - col_order.begin();
      sorted.entries[{static_cast<std::size_t>(r), static_cast<std::size_t>(c)}] = std::move(entry);
    }
    t = std::move(sorted);
  }
  return tables;
}

PeriodSweep period_sweep(const Run& run) {
  PeriodSweep sweep;
  for (const auto& c : run.cells) {
    std::string p = c.axis("period");
    if (!p.empty() && std::find(sweep.periods.begin(), sweep.periods.end(), p) == sweep.periods.end())
      sweep.periods.push_back(p);
  }
  if (sweep.periods.size() < 2) return {};
  std::stable_sort(sweep.periods.begin(), sweep.periods.end(),
                   [](const std::string& a, const std::string& b) { return period_ns(a) < period_ns(b); });
  for (const auto& c : run.cells) {
    std::string p = c.axis("period");
    if (p.empty()) continue;
    std::vector<std::pair<std::string, std::string>> axes;
    for (const auto& a : c.axes)
      if (a.first != "period") axes.push_back(a);
    auto row = std::find_if(sweep.rows.begin(), sweep.rows.end(), [&](const SweepRow& r) { return r.axes == axes; });
    if (row == sweep.rows.end()) row = sweep.rows.insert(sweep.rows.end(), SweepRow{axes, {}});
    add_to_entry(row->by_period[p], c);
  }
  return sweep;
}

std::vector<Overlay> default_overlays(const Run& run) {
  std::vector<Overlay> out;
  // The entry's measured cells, each labelled; a cell of another run says which.
  auto add_entry = [&](Overlay& o, const SeedEntry& e, const std::string& label) {
    auto parts = entry_by_run(run, e);
    for (int i : e.cells) {
      const Cell& c = run.cells[static_cast<std::size_t>(i)];
      if (!c.measured()) continue;
      if (o.lines.size() == kMaxOverlayLines) {
        ++o.left_out;
        continue;
      }
      o.lines.push_back({label + (parts.size() > 1 ? " (run " + c.run_id + ")" : e.cells.size() > 1 ? " " + c.id : ""), i});
    }
  };
  auto keep = [&](Overlay o) {
    if (o.lines.size() >= 2) out.push_back(std::move(o));
  };
  for (const auto& t : seed_tables(run)) {
    std::string caption;
    for (const auto& [k, v] : t.fixed) caption += (caption.empty() ? "" : ", ") + k + " = " + v;
    for (std::size_t i = 0; i < t.columns.size();) {
      std::size_t j = i;
      while (j < t.columns.size() && t.columns[j].backend == t.columns[i].backend && t.columns[j].machine == t.columns[i].machine) ++j;
      Overlay o{"seed", (t.columns[i].machine.empty() ? "" : t.columns[i].machine + ", ") + t.columns[i].backend +
                            (caption.empty() ? "" : " (" + caption + ")"), {}, 0, "both"};
      for (std::size_t r = 0; r < t.rows.size(); ++r)
        for (std::size_t c = i; c < j; ++c)
          if (auto e = t.entries.find({r, c}); e != t.entries.end()) add_entry(o, e->second, t.rows[r] + ", " + t.columns[c].label());
      keep(std::move(o));
      i = j;
    }
  }
  auto sweep = period_sweep(run);
  for (const auto& row : sweep.rows) {
    std::string title;
    for (const auto& [k, v] : row.axes) title += (title.empty() ? "" : ", ") + k + "=" + v;
    Overlay o{"sweep", "period sweep: " + title, {}, 0, "both"};
    for (const auto& p : sweep.periods)
      if (auto e = row.by_period.find(p); e != row.by_period.end()) add_entry(o, e->second, p);
    keep(std::move(o));
  }
  return out;
}

namespace {
std::vector<ReportSpec> report_specs(const Run& run) {
  std::vector<ReportSpec> out;
  for (const Run* one : run.runs())
    if (auto r = report_spec_from_json(member(one->stored->run, "report"))) out.push_back(std::move(*r));
  return out;
}
}  // namespace

std::vector<Overlay> plan_overlays(const Run& run) {
  std::vector<Overlay> out;
  std::set<std::string> seen;
  for (const auto& spec : report_specs(run))
    for (const auto& f : spec.figures) {
      if (!seen.insert(json{{"kind", f.draw}, {"title", f.title}, {"cells", selector_json(f.cells)}}.dump()).second) continue;
      Overlay o{"plan", f.title, {}, 0, f.draw};
      std::vector<int> chosen;
      for (const auto& c : run.cells)
        if (c.measured() && selector_matches(f.cells, c.axes)) chosen.push_back(c.index);
      // Label by the axes that differ among the figure's cells (all of them for one cell).
      std::vector<std::string> varying;
      for (int i : chosen)
        for (const auto& [k, v] : run.cells[static_cast<std::size_t>(i)].axes)
          if (std::find(varying.begin(), varying.end(), k) == varying.end())
            for (int other : chosen)
              if (run.cells[static_cast<std::size_t>(other)].axis(k) != v) {
                varying.push_back(k);
                break;
              }
      std::map<std::string, int> label_count;
      std::vector<std::string> labels;
      for (int i : chosen) {
        const Cell& c = run.cells[static_cast<std::size_t>(i)];
        std::string label;
        for (const auto& k : varying) label += (label.empty() ? "" : ", ") + k + "=" + c.axis(k);
        if (label.empty()) label = c.id;
        ++label_count[label];
        labels.push_back(label);
      }
      for (std::size_t n = 0; n < chosen.size(); ++n) {
        if (o.lines.size() == kMaxOverlayLines) {
          ++o.left_out;
          continue;
        }
        const Cell& c = run.cells[static_cast<std::size_t>(chosen[n])];
        o.lines.push_back({labels[n] + (label_count[labels[n]] > 1 ? " (run " + c.run_id + ")" : ""), chosen[n]});
      }
      out.push_back(std::move(o));
    }
  return out;
}

bool default_figures_wanted(const Run& run) {
  for (const auto& spec : report_specs(run))
    if (!spec.default_figures) return false;
  return true;
}

std::string host_identity(const json& h) {
  std::string out = text_of(h, "hostname");
  auto add = [&](const std::string& part) {
    if (!part.empty()) out += (out.empty() ? "" : ", ") + part;
  };
  std::string kernel = text_of(h, "kernel_release"), model = text_of(h, "preempt_model");
  if (!kernel.empty()) add("kernel " + kernel + (model.empty() ? "" : " (" + model + ")"));
  std::string cpus = text_of(h, "cpu_count"), cpu = text_of(h, "cpu_model");
  if (!cpu.empty() || !cpus.empty()) add((cpus.empty() ? "" : cpus + " x ") + cpu);
  return out;
}

std::string worst_case_text(long long ns) {
  char buf[48];
  double us = static_cast<double>(ns) / 1000.0;
  if (us < 100) std::snprintf(buf, sizeof buf, "%.1f µs", us);
  else std::snprintf(buf, sizeof buf, "%.0f µs", us);
  return buf;
}

}  // namespace vmlat::report
