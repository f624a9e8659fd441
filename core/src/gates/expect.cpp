#include "gates/expect.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "gates/evaluate.hpp"
#include "stats/intervals.hpp"
#include "stats/tail.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

namespace {

const json& at_key(const json& j, const char* key) {
  static const json null;
  return j.is_object() && j.contains(key) ? j[key] : null;
}

// The axes neither selector names, as one string: cells pair when theirs are equal.
std::string pairing_key(const ExpectAxes& axes, const std::set<std::string>& named) {
  std::string key;
  for (const auto& [k, v] : axes) {
    if (named.count(k)) continue;
    key += k;
    key += '\x1f';
    key += v;
    key += '\x1e';
  }
  return key;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string ns_text(double ns) {
  if (std::isnan(ns)) return "?";
  if (std::isinf(ns)) return "unbounded";
  return format_latency(std::chrono::nanoseconds(std::llround(ns)));
}

}  // namespace

std::string expect_side_text(const ExpectSide& s) {
  return s.cell + (s.run_id.empty() ? "" : " (run " + s.run_id + ")") + ": " + ns_text(s.value_ns) + " [" + ns_text(s.low_ns) +
         ", " + ns_text(s.high_ns) + "]";
}

namespace {

std::string percent(double c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", 100 * c);
  return buf;
}

struct Judged {
  const ExpectCell* cell;
  std::optional<stats::TailFit> fit;  // fitted on first use (max, rl)
};

ExpectSide side_of(Judged& j, const ExpectSpec& e, double horizon_s, double confidence) {
  const Histogram& h = j.cell->histogram;
  stats::StatInterval i;
  if (e.quantile > 0) i = stats::quantile_interval(h, e.quantile, confidence);
  else if (e.stat == "mean") i = stats::mean_interval(h, confidence);
  else {
    if (!j.fit) j.fit = stats::fit_tail(h, j.cell->duration_s);
    i = stats::level_interval(*j.fit, h, horizon_s, confidence);
  }
  return ExpectSide{j.cell->id, j.cell->run_id, i.value_ns, i.low_ns, i.high_ns, i.method};
}

std::string pair_verdict(const ExpectSide& s, const ExpectSide& l) {
  if (std::isnan(s.low_ns) || std::isnan(s.high_ns) || std::isnan(l.low_ns) || std::isnan(l.high_ns)) return "inconclusive";
  if (s.high_ns < l.low_ns) return "holds";
  if (s.low_ns > l.high_ns) return "violated";
  return "inconclusive";
}

}  // namespace

std::string selector_text(const Selector& selector) {
  std::string out;
  for (const auto& [axis, values] : selector) {
    if (!out.empty()) out += ' ';
    out += axis + "=";
    for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + values[i];
  }
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> expect_pairs(const ExpectSpec& e, const std::vector<const ExpectAxes*>& cells,
                                                              std::uint64_t limit, std::uint64_t* count) {
  std::set<std::string> named;
  for (const auto* side : {&e.smaller, &e.larger})
    for (const auto& kv : *side) named.insert(kv.first);
  std::unordered_map<std::string, std::vector<std::size_t>> larger;
  for (std::size_t j = 0; j < cells.size(); ++j)
    if (selector_matches(e.larger, *cells[j])) larger[pairing_key(*cells[j], named)].push_back(j);
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (!selector_matches(e.smaller, *cells[i])) continue;
    auto it = larger.find(pairing_key(*cells[i], named));
    if (it == larger.end()) continue;
    for (std::size_t j : it->second) {
      if (j == i) continue;
      if (n++ < limit) pairs.emplace_back(i, j);
    }
  }
  if (count) *count = n;
  return pairs;
}

double measure_phase_seconds(const json& result) {
  const json& measure = at_key(at_key(at_key(result, "timings"), "phases"), "measure_s");
  return measure.is_number() && measure.get<double>() > 0 ? measure.get<double>() : 0;
}

double measured_seconds(const json& result, std::uint64_t samples) {
  if (const double s = measure_phase_seconds(result); s > 0) return s;
  const json& period = at_key(at_key(result, "cell"), "period_ns");
  if (!period.is_number() || period.get<double>() <= 0) return 0;
  CellSpec cell;
  cell.period = std::chrono::nanoseconds(period.get<long long>());
  if (const json& cpus = at_key(at_key(result, "cell"), "cpus"); cpus.is_array()) cell.cpus.resize(cpus.size());
  return nominal_measured_seconds(cell, samples);
}

std::optional<ExpectCell> expect_cell(const json& result, const std::string& run_id, ExpectAxes axes) {
  const json& status = at_key(result, "status");
  if (!status.is_string() || status.get<std::string>() != "measured") return std::nullopt;
  const json& hist = at_key(at_key(result, "merged"), "histogram");
  if (!hist.is_object()) return std::nullopt;
  ExpectCell c;
  try {
    c.histogram = Histogram::from_json(hist);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (c.histogram.empty()) return std::nullopt;
  const json& cell = at_key(result, "cell");
  const json& id = at_key(cell, "id");
  c.id = id.is_string() ? id.get<std::string>() : "";
  c.run_id = run_id;
  if (axes.empty())
    for (const auto& [k, v] : at_key(cell, "axes").items())
      if (v.is_string()) axes.emplace_back(k, v.get<std::string>());
  c.axes = std::move(axes);
  c.duration_s = measured_seconds(result, c.histogram.samples());
  return c;
}

std::vector<ExpectResult> judge_expects(const std::vector<ExpectSpec>& specs, const std::vector<ExpectCell>& cells) {
  std::vector<const ExpectAxes*> axes;
  std::vector<Judged> judged;
  for (const auto& c : cells) {
    axes.push_back(&c.axes);
    judged.push_back(Judged{&c, std::nullopt});
  }
  std::vector<std::vector<std::pair<std::size_t, std::size_t>>> pairs;
  std::size_t family = 0;
  for (const auto& e : specs) {
    pairs.push_back(expect_pairs(e, axes, plan_limits::kExpectPairs));
    family += pairs.back().size();
  }
  std::vector<ExpectResult> out;
  for (std::size_t k = 0; k < specs.size(); ++k) {
    const ExpectSpec& e = specs[k];
    ExpectResult r;
    r.spec = e;
    r.family = family;
    r.pair_confidence = 1 - (1 - e.confidence) / static_cast<double>(std::max<std::size_t>(family, 1));
    int held = 0, violated = 0;
    const ExpectPair* first_violated = nullptr;
    const ExpectPair* first_open = nullptr;
    for (const auto& [i, j] : pairs[k]) {
      const double horizon = e.horizon_s > 0 ? e.horizon_s : std::min(cells[i].duration_s, cells[j].duration_s);
      ExpectPair p;
      p.smaller = side_of(judged[i], e, horizon, r.pair_confidence);
      p.larger = side_of(judged[j], e, horizon, r.pair_confidence);
      p.verdict = pair_verdict(p.smaller, p.larger);
      r.pairs.push_back(std::move(p));
    }
    for (const auto& p : r.pairs) {
      if (p.verdict == "holds") ++held;
      else if (p.verdict == "violated") {
        ++violated;
        if (!first_violated) first_violated = &p;
      } else if (!first_open)
        first_open = &p;
    }
    const std::string n = std::to_string(r.pairs.size());
    if (r.pairs.empty()) {
      std::size_t s = 0, l = 0;
      for (const auto& c : cells) {
        s += selector_matches(e.smaller, c.axes);
        l += selector_matches(e.larger, c.axes);
      }
      r.verdict = "inconclusive";
      r.reason = "no measured pair of cells: smaller selects " + std::to_string(s) + " measured cell(s), larger " + std::to_string(l) +
                 " (a claim without data never holds: measure both sides)";
    } else if (violated) {
      r.verdict = "violated";
      r.reason = "violated in " + std::to_string(violated) + " of " + n + " pair(s), e.g. " + expect_side_text(first_violated->smaller) +
                 " is above " + expect_side_text(first_violated->larger);
    } else if (held == static_cast<int>(r.pairs.size())) {
      r.verdict = "holds";
      r.reason = "holds in all " + n + " pair(s): each smaller interval lies below its partner's";
    } else {
      r.verdict = "inconclusive";
      const bool unbounded = std::isinf(first_open->smaller.high_ns) || std::isnan(first_open->smaller.high_ns) ||
                             std::isnan(first_open->larger.low_ns);
      r.reason = std::to_string(r.pairs.size() - static_cast<std::size_t>(held)) + " of " + n + " pair(s) undecided, e.g. " +
                 expect_side_text(first_open->smaller) + " against " + expect_side_text(first_open->larger) +
                 (unbounded ? " (" + first_open->smaller.method + "): a tail model or longer cells would bound it"
                            : ": the intervals overlap; longer cells narrow them, or the statistics are equal");
    }
    r.reason += " (intervals at " + percent(r.pair_confidence) + " each, " + percent(e.confidence) + " over " +
                std::to_string(family) + " pair(s) of the run's claims)";
    out.push_back(std::move(r));
  }
  return out;
}

json expect_json(const ExpectResult& r) {
  auto side = [](const ExpectSide& s) {
    return json{{"cell", s.cell}, {"run_id", s.run_id}, {"value_ns", number_or_null(s.value_ns)},
                {"low_ns", number_or_null(s.low_ns)}, {"high_ns", number_or_null(s.high_ns)}, {"method", s.method}};
  };
  json pairs = json::array();
  for (const auto& p : r.pairs) pairs.push_back(json{{"smaller", side(p.smaller)}, {"larger", side(p.larger)}, {"verdict", p.verdict}});
  return json{{"name", r.spec.name},
              {"description", r.spec.description},
              {"stat", r.spec.stat},
              {"smaller", selector_json(r.spec.smaller)},
              {"larger", selector_json(r.spec.larger)},
              {"confidence", r.spec.confidence},
              {"gate", r.spec.gate},
              {"verdict", r.verdict},
              {"reason", r.reason},
              {"pair_confidence", r.pair_confidence},
              {"family", r.family},
              {"pairs", pairs}};
}

std::optional<ExpectSpec> expect_spec_from_json(const json& j, std::string* why) {
  auto fail = [&](const std::string& message) -> std::optional<ExpectSpec> {
    if (why) *why = message;
    return std::nullopt;
  };
  if (!j.is_object()) return fail("an expects entry is not an object");
  ExpectSpec e;
  const json& name = at_key(j, "name");
  const json& stat = at_key(j, "stat");
  if (!name.is_string() || !stat.is_string()) return fail("an expects entry has no name or stat");
  e.name = name.get<std::string>();
  e.stat = stat.get<std::string>();
  if (const json& d = at_key(j, "description"); d.is_string()) e.description = d.get<std::string>();
  if (e.stat.size() > 1 && e.stat[0] == 'p') {
    auto q = parse_percentile(e.stat);
    if (!q) return fail("claim '" + e.name + "': stat '" + e.stat + "' is not a percentile");
    e.quantile = *q;
  } else if (e.stat.rfind("rl", 0) == 0) {
    auto h = parse_duration(e.stat.substr(2));
    if (!h || h->count() <= 0) return fail("claim '" + e.name + "': stat '" + e.stat + "' is not a return level");
    e.horizon_s = std::chrono::duration<double>(*h).count();
  } else if (e.stat != "max" && e.stat != "mean") {
    return fail("claim '" + e.name + "': unknown stat '" + e.stat + "'");
  }
  for (const char* key : {"smaller", "larger"}) {
    auto sel = selector_from_json(at_key(j, key));
    if (!sel) return fail("claim '" + e.name + "': " + key + " is not a selector");
    (std::string_view(key) == "smaller" ? e.smaller : e.larger) = std::move(*sel);
  }
  if (const json& c = at_key(j, "confidence"); c.is_number() && c.get<double>() > 0 && c.get<double>() < 1) e.confidence = c.get<double>();
  if (const json& g = at_key(j, "gate"); g.is_boolean()) e.gate = g.get<bool>();
  return e;
}

}  // namespace vmlat
