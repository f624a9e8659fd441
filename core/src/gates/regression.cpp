#include "gates/regression.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <ostream>

#include "gates/evaluate.hpp"
#include "plan.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

using std::chrono::nanoseconds;

std::optional<StatName> parse_stat_name(std::string_view text, std::string* why) {
  std::string s(text);
  if (s == "max" || s == "min" || s == "mean") return StatName{s, 0};
  if (s.size() > 1 && s[0] == 'p') {
    try {
      std::size_t used = 0;
      double pct = std::stod(s.substr(1), &used);
      if (used == s.size() - 1 && pct > 0 && pct < 100) return StatName{s, pct / 100.0};
    } catch (const std::exception&) {
    }
  }
  if (why) *why = "'" + s + "' is not a statistic: write max, min, mean or a percentile like p99 or p99.9";
  return std::nullopt;
}

nanoseconds Tolerance::allowed(nanoseconds base, const StatName& stat) const {
  nanoseconds by_tolerance = absolute;
  if (relative) by_tolerance = nanoseconds(static_cast<long long>(std::llround(fraction * static_cast<double>(base.count()))));
  nanoseconds resolution = stat.quantile > 0 ? std::chrono::microseconds(1) : nanoseconds(0);
  return std::max(by_tolerance, resolution);
}

std::optional<Tolerance> parse_tolerance(std::string_view text, std::string* why) {
  auto fail = [&](const std::string& message) -> std::optional<Tolerance> {
    if (why) *why = message;
    return std::nullopt;
  };
  std::string s(text);
  Tolerance t;
  t.text = s;
  if (!s.empty() && s.back() == '%') {
    std::string number = s.substr(0, s.size() - 1);
    try {
      std::size_t used = 0;
      double pct = std::stod(number, &used);
      if (used != number.size() || number.empty() || !(pct >= 0) || !std::isfinite(pct) || number[0] == '-' ||
          number[0] == '+')
        throw std::invalid_argument("bad");
      t.relative = true;
      t.fraction = pct / 100.0;
      return t;
    } catch (const std::exception&) {
      return fail("tolerance '" + s + "' is not a percentage: write e.g. \"10%\" (>= 0)");
    }
  }
  std::string duration_why;
  auto d = parse_duration(s, &duration_why);
  if (!d) return fail("tolerance '" + s + "' must be a percentage like \"10%\" or a duration like \"20us\": " + duration_why);
  t.relative = false;
  t.fraction = 0;
  t.absolute = *d;
  return t;
}

std::optional<nanoseconds> stored_statistic(const json& series, const StatName& stat) {
  if (!series.is_object()) return std::nullopt;
  auto stats = series.find("stats");
  if (stats != series.end() && stats->is_object()) {
    if (stats->value("samples", 0LL) <= 0) return std::nullopt;
    static const std::map<std::string, std::string> keys = {
        {"max", "max_ns"}, {"min", "min_ns"}, {"mean", "mean_ns"},    {"p50", "p50_ns"},
        {"p90", "p90_ns"}, {"p99", "p99_ns"}, {"p99.9", "p99_9_ns"}, {"p99.99", "p99_99_ns"}};
    auto key = keys.find(stat.name);
    if (key != keys.end()) {
      auto v = stats->find(key->second);
      if (v != stats->end() && v->is_number_integer()) return nanoseconds(v->get<long long>());
    }
  }
  // Any other percentile: from the histogram, as a live gate computes it.
  auto hist = series.find("histogram");
  if (hist == series.end() || !hist->is_object()) return std::nullopt;
  try {
    Histogram h = Histogram::from_json(*hist);
    if (h.empty()) return std::nullopt;
    GateSpec g;
    g.stat = stat.name;
    g.quantile = stat.quantile;
    return gate_statistic(g, h);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

double StatChange::relative() const {
  if (base.count() == 0) return std::nan("");
  return static_cast<double>(delta().count()) / static_cast<double>(base.count());
}

namespace {
std::string signed_latency(nanoseconds d) {
  return (d.count() < 0 ? "-" : "+") + format_latency(nanoseconds(std::llabs(d.count())));
}
std::string signed_percent(double r) {
  if (std::isnan(r)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", 100.0 * r);
  return buf;
}
}  // namespace

std::string StatChange::describe() const {
  return stat.name + " " + format_latency(value) + " vs baseline " + format_latency(base) + " (" + signed_latency(delta()) +
         ", " + signed_percent(relative()) + ")";
}

StatChange compare_statistic(const StatName& stat, nanoseconds base, nanoseconds value, const Tolerance& tolerance) {
  StatChange c;
  c.stat = stat;
  c.base = base;
  c.value = value;
  c.allowed = tolerance.allowed(base, stat);
  return c;
}

void BaselineRun::load() const {
  if (loaded_) return;
  loaded_ = true;
  try {
    run_ = load_run_dir(path_);
  } catch (const std::exception& e) {
    error_ = e.what();
  }
}

const StoredRun* BaselineRun::run() const {
  load();
  return run_ ? &*run_ : nullptr;
}

const std::string& BaselineRun::error() const {
  load();
  return error_;
}

const json* BaselineRun::cell(const std::string& id) const {
  const StoredRun* r = run();
  if (!r) return nullptr;
  for (const auto& c : r->cells)
    if (c.contains("cell") && c["cell"].is_object() && c["cell"].value("id", std::string()) == id) return &c;
  return nullptr;
}

std::shared_ptr<const BaselineRun> baseline_run(const std::string& path) {
  // One load per directory while a plan holds it (two gates on max and p99
  // against the same last-good run read it once).
  static std::map<std::string, std::weak_ptr<const BaselineRun>> shared;
  if (auto existing = shared[path].lock()) return existing;
  auto created = std::make_shared<const BaselineRun>(path);
  shared[path] = created;
  return created;
}

GateResult evaluate_regression_gate(const GateSpec& gate, const CellSpec& cell, CellStatus status,
                                    const std::string& cell_error, const Histogram* merged) {
  GateResult r;
  r.gate = gate.name;
  r.stat = gate.stat;
  const RegressionSpec& spec = *gate.regression;
  const BaselineRun& baseline = *spec.baseline;
  r.extra = json{{"baseline", baseline.path()}, {"tolerance", spec.tolerance.text}};
  if (status == CellStatus::skipped) {
    r.verdict = Verdict::skipped;
    r.message = cell_error;
    return r;
  }
  if (status != CellStatus::measured || !merged || merged->empty()) {
    r.verdict = Verdict::error;
    r.message = status == CellStatus::measured ? "the probe returned no samples" : "not measured: " + cell_error;
    return r;
  }
  const StoredRun* base_run = baseline.run();
  if (!base_run) {
    r.verdict = Verdict::error;
    r.message = "baseline '" + baseline.path() + "' cannot be read: " + baseline.error();
    return r;
  }
  std::string base_id = base_run->run.value("run_id", base_run->dir);
  r.extra["baseline_run"] = base_id;
  const json* base_cell = baseline.cell(cell.id);
  if (!base_cell) {
    r.verdict = Verdict::skipped;
    r.message = "no baseline: cell " + cell.id + " is not in baseline run " + base_id + " (" + base_run->dir + ")";
    return r;
  }
  std::string base_status = base_cell->value("status", std::string("?"));
  StatName stat{gate.stat, gate.quantile};
  std::optional<nanoseconds> base_value;
  if (base_status == "measured" && base_cell->contains("merged")) base_value = stored_statistic((*base_cell)["merged"], stat);
  if (!base_value) {
    r.verdict = Verdict::skipped;
    r.message = "no baseline: cell " + cell.id + " was not measured in baseline run " + base_id + " (" + base_status + ")";
    return r;
  }
  StatChange change = compare_statistic(stat, *base_value, gate_statistic(gate, *merged), spec.tolerance);
  r.value = change.value;
  r.bound = change.bound();
  r.extra["baseline_ns"] = change.base.count();
  r.verdict = change.regression() ? Verdict::fail : Verdict::pass;
  r.message = change.describe() + (change.regression() ? " exceeds" : " is within") + " tolerance " + spec.tolerance.text +
              " (+" + format_latency(change.allowed) + ")";
  if (change.regression()) r.message += " by " + format_latency(change.value - change.bound());
  return r;
}

void preload_baselines(const Plan& plan, std::ostream& err) {
  for (const auto& gate : plan.gates) {
    if (!gate.regression) continue;
    const BaselineRun& baseline = *gate.regression->baseline;
    if (!baseline.run())
      err << "vmlat: gate '" << gate.name << "': baseline '" << baseline.path() << "' cannot be read: " << baseline.error()
          << "; the gate's verdicts will be errors (exit 3)\n";
  }
}

}  // namespace vmlat
