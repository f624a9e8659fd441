#include <algorithm>
#include <cmath>
#include <cstdio>

#include "gates/evaluate.hpp"
#include "gates/regression.hpp"
#include "stats/tail.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

namespace {
constexpr std::pair<Verdict, const char*> kVerdicts[] = {
    {Verdict::pass, "pass"}, {Verdict::fail, "fail"}, {Verdict::error, "error"},
    {Verdict::skipped, "skipped"}, {Verdict::flaky, "flaky"},
};
}  // namespace

const char* verdict_name(Verdict v) {
  for (const auto& [verdict, name] : kVerdicts)
    if (verdict == v) return name;
  return "?";
}

std::optional<Verdict> parse_verdict(std::string_view name) {
  for (const auto& [verdict, word] : kVerdicts)
    if (name == word) return verdict;
  return std::nullopt;
}

json gates_json(const std::vector<GateResult>& gates) {
  json arr = json::array();
  for (const auto& g : gates) {
    json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
    if (!g.series.empty()) j["series"] = g.series;
    // A value was measured for pass, fail and flaky (the first attempt's),
    // and for an error decided by a retest that could not be measured.
    if (g.stat != "lint" && (g.verdict == Verdict::pass || g.verdict == Verdict::fail || g.verdict == Verdict::flaky ||
                             (g.verdict == Verdict::error && g.value.count() > 0))) {
      j["value_ns"] = g.value.count();
      j["excess_ns"] = std::max<long long>(0, (g.value - g.bound).count());
    }
    if (!g.message.empty()) j["message"] = g.message;
    for (auto it = g.extra.begin(); it != g.extra.end(); ++it) j[it.key()] = it.value();
    arr.push_back(j);
  }
  return arr;
}

double nominal_measured_seconds(const CellSpec& cell, std::uint64_t samples) {
  const double cpus = static_cast<double>(std::max<std::size_t>(cell.cpus.size(), 1));
  return static_cast<double>(samples) * static_cast<double>(cell.period.count()) * 1e-9 / cpus;
}

std::chrono::nanoseconds return_level_statistic(const GateSpec& gate, const Histogram& merged, double duration_s,
                                                std::string* basis) {
  stats::TailOptions options;
  options.horizons_s = {gate.horizon_s};
  const stats::TailFit fit = stats::fit_tail(merged, duration_s, options);
  if (fit.fitted() && !fit.return_levels.empty() && std::isfinite(fit.return_levels.front().value_ns)) {
    if (basis) *basis = "gpd";
    // Never below what was measured: the model extrapolates, it does not forget.
    return std::max(merged.max(), std::chrono::nanoseconds(std::llround(fit.return_levels.front().value_ns)));
  }
  if (basis) *basis = "empirical: " + (fit.reason.empty() ? std::string("no return level") : fit.reason);
  return merged.max();
}

std::chrono::nanoseconds gate_statistic(const GateSpec& gate, const Histogram& merged) {
  if (gate.stat == "max") return merged.max();
  if (gate.stat == "min") return merged.min();
  if (gate.stat == "mean") return merged.mean();
  return merged.percentile(gate.quantile);
}

GateResult evaluate_lint_gate(const GateSpec& gate, CellStatus status, const std::string& cell_error, const json* facts) {
  GateResult r;
  r.gate = gate.name;
  r.stat = "lint";
  r.extra["lint"] = gate.lint;
  const json* lint = nullptr;
  if (facts && facts->is_object())
    if (auto b = facts->find("backend"); b != facts->end() && b->is_object())
      if (auto l = b->find("lint"); l != b->end() && l->is_object()) lint = &*l;
  if (status == CellStatus::skipped) {
    r.verdict = Verdict::skipped;
    r.message = cell_error;
    return r;
  }
  // As every gate: a cell that was not measured never passes.
  if (status != CellStatus::measured) {
    r.verdict = Verdict::error;
    r.message = "not measured: " + cell_error;
    return r;
  }
  if (!lint || !lint->contains("findings") || !(*lint)["findings"].is_array()) {
    r.verdict = Verdict::error;
    r.message = "the backend recorded no RT lint (facts.backend.lint: the libvirt backend does)";
    return r;
  }
  std::string rules;
  int counted = 0;
  for (const auto& f : (*lint)["findings"]) {
    const std::string severity = f.is_object() ? f.value("severity", std::string()) : std::string();
    if (severity != "error" && !(gate.lint == "warning" && severity == "warning")) continue;
    ++counted;
    if (counted <= 8) rules += (rules.empty() ? "" : ", ") + f.value("rule", std::string("?"));
  }
  r.extra["findings"] = counted;
  r.verdict = counted == 0 ? Verdict::pass : Verdict::fail;
  if (counted > 0)
    r.message = std::to_string(counted) + " RT lint finding(s) of severity " + gate.lint + (gate.lint == "warning" ? " or error" : "") +
                ": " + rules + (counted > 8 ? ", ..." : "");
  return r;
}

std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, CellStatus status,
                                       const std::string& cell_error, const Histogram* default_merged,
                                       const std::map<std::string, Histogram>* named, const json* facts,
                                       double measured_s) {
  std::vector<GateResult> results;
  for (const auto& gate : plan.gates) {
    if (!gate.matches(cell)) continue;
    if (!gate.lint.empty()) {
      results.push_back(evaluate_lint_gate(gate, status, cell_error, facts));
      continue;
    }
    if (gate.regression) {
      results.push_back(
          evaluate_regression_gate(gate, cell, status, cell_error, default_merged, std::max<std::size_t>(gate.cells_matched, 1)));
      continue;
    }
    const Histogram* merged = default_merged;
    if (!gate.series.empty()) {
      merged = nullptr;
      if (named)
        if (auto it = named->find(gate.series); it != named->end()) merged = &it->second;
    }
    GateResult r;
    r.gate = gate.name;
    r.stat = gate.stat;
    r.series = gate.series;
    r.bound = gate.bound;
    if (status == CellStatus::skipped) {
      r.verdict = Verdict::skipped;
      r.message = cell_error;
    } else if (status != CellStatus::measured || !merged || merged->empty()) {
      // A cell that was not measured never counts as passed.
      r.verdict = Verdict::error;
      r.message = status != CellStatus::measured ? "not measured: " + cell_error
                  : !merged && !gate.series.empty() ? "the cell has no series '" + gate.series + "'"
                                                    : "the probe returned no samples";
    } else if (gate.horizon_s > 0) {
      std::string basis;
      const double seconds = measured_s > 0 ? measured_s : nominal_measured_seconds(cell, merged->samples());
      r.value = return_level_statistic(gate, *merged, seconds, &basis);
      r.extra = json{{"basis", basis}, {"horizon_s", gate.horizon_s}};
      r.verdict = r.value <= r.bound ? Verdict::pass : Verdict::fail;
      r.message = gate.stat + " " + format_latency(r.value) + (basis == "gpd" ? " (tail model)" : " (the measured max: " + basis + ")") +
                  (r.verdict == Verdict::fail ? " exceeds" : " is within") + " bound " + format_latency(r.bound);
    } else {
      r.value = gate_statistic(gate, *merged);
      r.verdict = r.value <= r.bound ? Verdict::pass : Verdict::fail;
      if (r.verdict == Verdict::fail) {
        auto over = r.value - r.bound;
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(over.count()) / static_cast<double>(r.bound.count()));
        r.message = gate.stat + " " + format_latency(r.value) + " exceeds bound " + format_latency(r.bound) + " by " +
                    format_latency(over) + " (" + pct + ")";
      }
    }
    results.push_back(r);
  }
  return results;
}

}  // namespace vmlat
