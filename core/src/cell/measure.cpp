#include "cell/measure.hpp"

#include <optional>

#include "cell/plausibility.hpp"
#include "cell/running_cell.hpp"
#include "gates/evaluate.hpp"
#include "loader.hpp"
#include "vmlat/interrupt.hpp"

namespace vmlat {

namespace {

// One series as result.json stores it: per CPU stats and histogram, merged.
struct SeriesDocument {
  Histogram merged;
  json per_cpu = json::object();
};

SeriesDocument series_document(const std::map<int, Histogram>& by_cpu) {
  SeriesDocument d;
  for (const auto& [cpu, h] : by_cpu) {
    d.merged.merge(h);
    d.per_cpu[std::to_string(cpu)] = json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}};
  }
  return d;
}

json plugin_json(const Instance& instance, const PluginRegistry& registry) {
  json j{{"instance", instance.name}, {"plugin", instance.plugin}};
  if (auto* info = registry.find(instance.plugin)) {
    j["version"] = info->version;
    j["file"] = info->file.string();
  }
  return j;
}

// What the probe returned says about the cell, beyond the life's own ending.
void judge_probe_result(const ProbeResult& r, CellOutcome& o) {
  if (o.status != CellStatus::measured) return;
  if (!r.invalid.empty()) {
    o.status = CellStatus::infra_error;
    o.error = r.invalid;
    o.error_phase = "measure";
  } else if (r.interrupted) {
    // Only vmlat's own interrupt makes a cell "interrupted"; a probe that
    // somebody else stopped (kill -INT/-TERM) measured less than asked.
    o.status = CellStatus::infra_error;
    o.error = "the probe was stopped by a signal vmlat did not send (kill from outside?); its partial data is kept but "
              "is not a measurement";
    o.error_phase = "measure";
  }
}

}  // namespace

CellOutcome measure_cell(const MeasureCell& m) {
  const Plan& plan = m.plan;
  const Cell& cell = m.cell;
  const std::string started_at = iso_now();
  std::filesystem::create_directories(m.work_dir);
  CellContextImpl ctx(cell.spec, m.cell_dir, m.work_dir, m.log, m.host);

  std::optional<ProbeResult> probe_result;
  std::optional<Clock::duration> measured_for;
  RunningCell running(plan, m.registry, cell, ctx, m.on_phase);
  RunningCell::Ended ended = running.run(cell.spec.duration + plan.timeouts.measure_margin, [&](RunningCell& c) {
    const auto t0 = Clock::now();
    probe_result = c.probe().run(c.target(), c.context());
    measured_for = Clock::now() - t0;
  });

  CellOutcome o;
  o.status = ended.status;
  o.error = ended.error;
  o.error_phase = ended.status == CellStatus::measured ? "" : ended.phase;
  if (probe_result) judge_probe_result(*probe_result, o);
  if (o.status != ended.status) m.log.error("measure: " + o.error);

  json facts = ended.facts;
  json per_cpu = json::object(), series_json = json::object(), spikes_json = json::array();
  if (probe_result && !probe_result->per_cpu.empty()) {
    SeriesDocument doc = series_document(probe_result->per_cpu);
    per_cpu = doc.per_cpu;
    o.merged = doc.merged;
    o.series_merged[probe_result->default_series] = doc.merged;
    for (const auto& [name, by_cpu] : probe_result->series) {
      SeriesDocument named = series_document(by_cpu);
      o.series_merged[name] = named.merged;
      series_json[name] = json{{"merged", json{{"stats", stats_to_json(named.merged.stats())}, {"histogram", named.merged.to_json()}}},
                               {"per_cpu", named.per_cpu}};
    }
    // Facts of this measurement complete (and override) the plugin's facts().
    if (!facts.contains("probe")) facts["probe"] = json::object();
    for (auto it = probe_result->facts.begin(); it != probe_result->facts.end(); ++it) facts["probe"][it.key()] = it.value();
    const std::string spike_error = sort_and_check_spikes(probe_result->spikes, probe_result->per_cpu);
    for (const auto& sp : probe_result->spikes)
      spikes_json.push_back(json{{"cpu", sp.cpu},
                                 {"latency_ns", sp.latency.count()},
                                 {"monotonic_ns", sp.monotonic_ns < 0 ? json(nullptr) : json(sp.monotonic_ns)},
                                 {"realtime_ns", sp.realtime_ns < 0 ? json(nullptr) : json(sp.realtime_ns)}});
    if (o.measured()) {
      // Data that does not fit the cell is not a measurement, whichever of
      // its series; it stays in result.json for diagnosis.
      std::string why = implausible(cell.spec, probe_result->per_cpu, measured_for);
      for (auto it = probe_result->series.begin(); why.empty() && it != probe_result->series.end(); ++it) {
        why = implausible(cell.spec, it->second, measured_for);
        if (!why.empty()) why = "series '" + it->first + "': " + why;
      }
      if (why.empty()) why = spike_error;
      if (!why.empty()) {
        o.status = CellStatus::infra_error;
        o.error = why;
        o.error_phase = "measure";
        m.log.error("measure: " + why);
      }
    }
  } else if (o.measured()) {
    o.status = CellStatus::infra_error;
    o.error = "the probe returned no per-CPU results";
    o.error_phase = "measure";
  }
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr, &o.series_merged, &facts,
                           measured_for ? std::chrono::duration<double>(*measured_for).count() : 0.0);
  // A gate on a series the measured cell lacks never lets the cell pass.
  // (Regression gates without a baseline have their own rule.)
  for (const auto& g : o.gates) {
    if (!o.measured() || g.verdict != Verdict::error || g.series.empty()) continue;
    o.status = CellStatus::infra_error;
    o.error = "gate '" + g.gate + "' cannot be evaluated: " + g.message;
    o.error_phase = "measure";
  }

  const Instance& backend_inst = plan.backends.at(cell.backend);
  const Instance& probe_inst = plan.probes.at(cell.probe);
  json plugins{{"backend", plugin_json(backend_inst, m.registry)}, {"probe", plugin_json(probe_inst, m.registry)}};
  if (cell.workload != "none") {
    const Instance& workload_inst = plan.workloads.at(cell.workload);
    plugins["workload"] = plugin_json(workload_inst, m.registry);
    plugins["workload"]["where"] = workload_inst.where;
  }
  o.document = json{
      {"schema", "vmlat-cell-result/1"},
      {"run_id", m.run_id},
      {"cell",
       {{"id", cell.spec.id},
        {"index", cell.index},
        {"axes", axes_json(cell.spec)},
        {"host", cell.spec.host_name},
        {"period_ns", cell.spec.period.count()},
        {"duration_ns", cell.spec.duration.count()},
        {"cpus", cell.spec.cpus.empty() ? json("all") : json(cell.spec.cpus)}}},
      {"status", nullptr},
      {"error", nullptr},
      {"error_phase", nullptr},
      {"plugins", plugins},
      {"host_facts", m.host_facts},
      {"facts", facts},
      {"timings", json{{"started", started_at}, {"finished", iso_now()}, {"phases", ended.timings}}},
      {"merged", o.merged ? json{{"stats", stats_to_json(o.merged->stats())}, {"histogram", o.merged->to_json()}} : json(nullptr)},
      {"per_cpu", per_cpu},
      {"default_series", probe_result ? probe_result->default_series : std::string(default_series_name)},
      {"series", series_json},
      {"spikes", spikes_json},
      {"traces", probe_result ? json(probe_result->traces) : json::array()},
      {"gates", nullptr},
      {"artifacts", ctx.artifacts},
      {"warnings", m.log.warnings}};
  // Keep the scratch dir of a failed cell for diagnosis.
  if (o.measured()) {
    std::error_code ec;
    std::filesystem::remove_all(m.work_dir, ec);
  }
  return o;
}

}  // namespace vmlat
