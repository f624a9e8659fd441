#include "gates/regression.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>

#include "gates/evaluate.hpp"
#include "plan.hpp"
#include "stats/history.hpp"
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

namespace {
// The statistics result.json's `stats` holds, by name.
const std::map<std::string, std::string>& stats_keys() {
  static const std::map<std::string, std::string> keys = {
      {"max", "max_ns"}, {"min", "min_ns"}, {"mean", "mean_ns"},    {"p50", "p50_ns"},
      {"p90", "p90_ns"}, {"p99", "p99_ns"}, {"p99.9", "p99_9_ns"}, {"p99.99", "p99_99_ns"}};
  return keys;
}
}  // namespace

CellContent content_for(const std::vector<StatName>& stats) {
  CellContent c;
  c.summary = true;
  for (const auto& s : stats) {
    auto key = stats_keys().find(s.name);
    if (key == stats_keys().end()) c.histograms = true;  // computed from the histogram
    else c.stats_keys.push_back(key->second);
  }
  return c;
}

std::optional<nanoseconds> stored_statistic(const json& series, const StatName& stat) {
  if (!series.is_object()) return std::nullopt;
  auto stats = series.find("stats");
  if (stats != series.end() && stats->is_object()) {
    if (stats->value("samples", 0LL) <= 0) return std::nullopt;
    auto key = stats_keys().find(stat.name);
    if (key != stats_keys().end()) {
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

stats::StatisticKind statistic_kind(const StatName& stat) {
  return stat.name == "max" ? stats::StatisticKind::maximum : stats::StatisticKind::percentile;
}

double statistic_resolution_ns(const StatName& stat) { return stat.quantile > 0 ? 1000.0 : 0.0; }

stats::HistoryOptions history_options(const Tolerance& tolerance, double confidence) {
  stats::HistoryOptions h;
  h.confidence = confidence;
  h.tolerance_relative = tolerance.relative;
  h.tolerance_fraction = tolerance.fraction;
  h.tolerance_ns = static_cast<double>(tolerance.absolute.count());
  return h;
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
std::string fmt_confidence(double c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", 100.0 * c);
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

const json* find_cell_result(const StoredRun& r, const std::string& id) {
  for (const auto& c : r.cells)
    if (c.contains("cell") && c["cell"].is_object() && c["cell"].value("id", std::string()) == id) return &c;
  return nullptr;
}

namespace {
std::string canonical_or_self(const std::string& dir) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(dir, ec);
  return ec ? dir : c.string();
}
std::string plan_name_of(const StoredRun& r) {
  return r.run.contains("plan") && r.run["plan"].is_object() ? r.run["plan"].value("name", std::string()) : "";
}
}  // namespace

std::vector<StoredRun> load_baseline_runs(const std::string& path, const std::string& plan, const std::string& started_by,
                                          const std::string& exclude, const CellContent& content) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<StoredRun> runs;
  if (fs::exists(fs::path(path) / "run.json", ec) || !fs::is_directory(path, ec)) {
    runs.push_back(load_run_dir(path, content));  // throws saying why
    return runs;
  }
  const std::string excluded = exclude.empty() ? "" : canonical_or_self(exclude);
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (!entry.is_symlink() && entry.is_directory() && fs::exists(entry.path() / "run.json")) dirs.push_back(entry.path());
  for (const auto& d : dirs) {
    if (!excluded.empty() && canonical_or_self(d.string()) == excluded) continue;
    StoredRun r;
    try {
      r = load_run_head(d.string());
    } catch (const std::exception&) {
      continue;  // a broken or foreign directory is no part of the history
    }
    const std::string started = r.run.value("started", std::string());
    if (r.run.value("status", std::string()) != "complete" || (!plan.empty() && plan_name_of(r) != plan) ||
        (!started_by.empty() && started > started_by))
      continue;
    runs.push_back(std::move(r));
  }
  // The cells of the runs chosen, all runs' files in one pool of parsers.
  std::vector<StoredRun*> chosen;
  for (auto& r : runs) chosen.push_back(&r);
  const auto errors = load_run_cells(chosen, content);
  std::vector<StoredRun> complete;
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (errors[i].empty()) complete.push_back(std::move(runs[i]));  // a broken cell: the run is no part of it either
  runs = std::move(complete);
  if (runs.empty())
    throw std::runtime_error("'" + path + "' holds no complete run" + (plan.empty() ? "" : " of plan '" + plan + "'") +
                             (started_by.empty() ? "" : " that started by " + started_by) +
                             (ec ? " (" + ec.message() + ")" : ""));
  std::sort(runs.begin(), runs.end(), [](const StoredRun& a, const StoredRun& b) {
    return std::pair(a.run.value("started", std::string()), a.dir) < std::pair(b.run.value("started", std::string()), b.dir);
  });
  return runs;
}

void BaselineRun::load(const std::string& plan) const {
  if (loaded_) return;
  loaded_ = true;
  try {
    runs_ = load_baseline_runs(path_, plan);
  } catch (const std::exception& e) {
    error_ = e.what();
  }
}

void BaselineRun::preload(const std::string& plan) const { load(plan); }

const StoredRun* BaselineRun::run() const {
  load("");
  return runs_.empty() ? nullptr : &runs_.back();
}

const std::vector<StoredRun>& BaselineRun::runs() const {
  load("");
  return runs_;
}

const std::string& BaselineRun::error() const {
  load("");
  return error_;
}

const json* BaselineRun::cell(const std::string& id) const {
  const StoredRun* r = run();
  if (!r) return nullptr;
  return find_cell_result(*r, id);
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
                                    const std::string& cell_error, const Histogram* merged, std::size_t family_size) {
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
  // The cell's statistic in every run of the baseline that measured it (the newest `last`).
  const auto& runs = baseline.runs();
  const std::size_t first = spec.last > 0 && runs.size() > spec.last ? runs.size() - spec.last : 0;
  StatName stat{gate.stat, gate.quantile};
  std::vector<double> history;
  std::string newest_status;
  for (std::size_t i = first; i < runs.size(); ++i) {
    const json* c = find_cell_result(runs[i], cell.id);
    if (!c) continue;
    newest_status = c->value("status", std::string("?"));
    if (newest_status == "measured" && c->contains("merged"))
      if (auto v = stored_statistic((*c)["merged"], stat)) history.push_back(static_cast<double>(v->count()));
  }
  if (history.empty()) {
    r.verdict = Verdict::skipped;
    r.message = newest_status.empty()
                    ? "no baseline: cell " + cell.id + " is not in baseline run " + base_id + " (" + base_run->dir + ")"
                    : "no baseline: cell " + cell.id + " was not measured in baseline run " + base_id + " (" + newest_status + ")";
    return r;
  }
  const nanoseconds value = gate_statistic(gate, *merged);
  stats::HistoryOptions options = history_options(spec.tolerance, gate.confidence);
  options.family_size = family_size;
  const stats::StatisticTest test = stats::test_statistic(history, static_cast<double>(value.count()), statistic_kind(stat),
                                                          statistic_resolution_ns(stat), options);
  const stats::StatisticVerdict verdict = stats::judge(std::vector<stats::StatisticTest>{test}, options).front();
  StatChange change;
  change.stat = stat;
  change.value = value;
  change.base = nanoseconds(std::llround(test.center_ns));
  change.allowed = nanoseconds(std::llround(test.allowed_ns));
  r.value = value;
  // The smallest value regressed on its own: beyond the tolerance and, with
  // a spread to judge, beyond the history's prediction at the corrected level.
  double bound = test.center_ns + test.allowed_ns;
  if (std::isfinite(verdict.detectable_ratio)) bound = std::max(bound, verdict.detectable_ratio * test.center_ns);
  r.bound = nanoseconds(std::llround(bound));
  const bool regressed = verdict.verdict == stats::Verdict::regressed;
  r.verdict = regressed ? Verdict::fail : Verdict::pass;
  r.extra["baseline_ns"] = change.base.count();
  r.extra["baseline_runs"] = test.runs;
  r.extra["history_verdict"] = std::string(stats::verdict_name(verdict.verdict));
  r.extra["confidence"] = std::isfinite(verdict.confidence) ? json(verdict.confidence) : json(nullptr);
  r.extra["method"] = verdict.method;
  r.extra["p"] = std::isfinite(verdict.p) ? json(verdict.p) : json(nullptr);
  r.extra["why"] = verdict.why;
  if (test.model == "tolerance" && test.runs == 1) {
    // One earlier run: no spread to judge, the tolerance rule as it always was.
    r.message = change.describe() + (regressed ? " exceeds" : " is within") + " tolerance " + spec.tolerance.text + " (+" +
                format_latency(change.allowed) + ")";
    if (regressed) r.message += " by " + format_latency(change.value - change.bound());
  } else {
    r.message = stat.name + " " + format_latency(value) + " vs baseline " + format_latency(change.base) + " (median of " +
                std::to_string(test.runs) + " runs; " + signed_latency(change.delta()) + ", " + signed_percent(change.relative()) +
                "): " + std::string(stats::verdict_name(verdict.verdict)) +
                (std::isfinite(verdict.confidence) ? " at confidence " + fmt_confidence(verdict.confidence) : "") + ", " +
                verdict.why + "; tolerance " + spec.tolerance.text + " (+" + format_latency(change.allowed) + ")";
  }
  return r;
}

void preload_baselines(const Plan& plan, std::ostream& err) {
  for (const auto& gate : plan.gates) {
    if (!gate.regression) continue;
    const BaselineRun& baseline = *gate.regression->baseline;
    baseline.preload(plan.name);
    if (!baseline.run())
      err << "vmlat: gate '" << gate.name << "': baseline '" << baseline.path() << "' cannot be read: " << baseline.error()
          << "; the gate's verdicts will be errors (exit 3)\n";
  }
}

}  // namespace vmlat
