#include "metrics.hpp"

#include "../locks.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace vmlat::exporter {

namespace {

// Label names vmlat sets itself; an axis of the same name is renamed.
const std::set<std::string>& reserved_names() {
  static const std::set<std::string> names = {
      "plan",          "host",         "cell",           "cpu",          "le",           "quantile",  "percentile",
      "gate",          "stat",         "job",            "instance",     "vmlat_version", "run_id",
      "kernel",        "target_kernel", "preempt_model", "hypervisor",  "hypervisor_version",
      "qemu_version",  "probe_engine", "probe_version",  "status",        "series"};
  return names;
}

double ns_to_s(const json& v) {
  if (v.is_number()) return v.get<double>() / 1e9;
  return std::nan("");
}

std::string text_of(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

const json& at_or_null(const json& j, const char* key) {
  static const json null_value;
  if (!j.is_object()) return null_value;
  auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

std::string format_period(long long ns) {
  struct U { long long f; const char* s; };
  for (U u : {U{3600000000000LL, "h"}, U{60000000000LL, "m"}, U{1000000000LL, "s"}, U{1000000LL, "ms"}, U{1000LL, "us"}})
    if (ns != 0 && ns % u.f == 0) return std::to_string(ns / u.f) + u.s;
  return std::to_string(ns) + "ns";
}

prometheus::ClientMetric with_labels(const LabelList& labels) {
  prometheus::ClientMetric m;
  m.label.reserve(labels.size());
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  return m;
}

LabelList plus(LabelList base, std::initializer_list<std::pair<std::string, std::string>> more) {
  for (const auto& p : more) base.push_back(p);
  return base;
}

}  // namespace

const std::vector<std::uint64_t>& bucket_bounds_us() {
  static const std::vector<std::uint64_t> bounds = {1,    2,    5,    10,    20,    50,    100,   200,
                                                    500,  1000, 2000, 5000,  10000, 20000, 50000, 100000};
  return bounds;
}

json histogram_doc_for_metrics(const Histogram& h) {
  const auto& bounds = bucket_bounds_us();
  std::vector<std::uint64_t> counts(bounds.size() + 1, 0);  // [0] below bounds[0], [i + 1] from bounds[i] on
  std::size_t b = 0;
  for (const auto& [k, n] : h.buckets()) {
    while (b < bounds.size() && bounds[b] <= k) ++b;
    counts[b] += n;
  }
  json buckets = json::array();
  for (std::size_t i = 0; i <= bounds.size(); ++i)
    if (counts[i] != 0) buckets.push_back({i == 0 ? 0 : bounds[i - 1], counts[i]});
  return json{{"bucket_width_ns", 1000},
              {"buckets", std::move(buckets)},
              {"overflows", h.overflows()},
              {"missed_periods", h.missed_periods() ? json(*h.missed_periods()) : json(nullptr)},
              {"min_ns", h.min().count()},
              {"max_ns", h.max().count()},
              {"sum_ns", h.sum().count()}};
}

std::string sanitize_label_name(const std::string& name) {
  std::string out;
  out.reserve(name.size() + 1);
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) out = "_" + out;
  if (out.rfind("__", 0) == 0 || reserved_names().count(out)) out = "axis_" + out;
  return out;
}

double iso8601_to_epoch(const std::string& text) {
  std::tm tm{};
  int y, mo, d, h, mi;
  double s;
  char z = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%lf%c", &y, &mo, &d, &h, &mi, &s, &z) < 6) return -1;
  if (z != 0 && z != 'Z') return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
  time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return -1;
  return static_cast<double>(t) + s;
}

prometheus::MetricFamily& MetricSet::family(const std::string& name, const std::string& help,
                                            prometheus::MetricType type) {
  auto it = index_.find(name);
  if (it != index_.end()) return families_[it->second];
  index_[name] = families_.size();
  families_.push_back(prometheus::MetricFamily{name, help, type, {}});
  return families_.back();
}

void MetricSet::gauge(const std::string& name, const std::string& help, const LabelList& labels, double value) {
  if (std::isnan(value)) return;
  auto m = with_labels(labels);
  m.gauge.value = value;
  family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void MetricSet::counter(const std::string& name, const std::string& help, const LabelList& labels, double value) {
  if (std::isnan(value)) return;
  auto m = with_labels(labels);
  m.counter.value = value;
  family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

void MetricSet::histogram(const std::string& name, const std::string& help, const LabelList& labels, const json& h) {
  if (!h.is_object()) return;
  const json* buckets = nullptr;
  for (const char* key : {"buckets", "buckets_us"})
    if (h.contains(key) && h[key].is_array()) buckets = &h[key];
  std::uint64_t overflows = h.value("overflows", std::uint64_t{0});
  const auto& bounds = bucket_bounds_us();
  std::vector<std::uint64_t> cumulative(bounds.size(), 0);
  std::uint64_t total = 0;
  if (buckets) {
    std::size_t b = 0;
    // Buckets are ascending; bucket k = [k, k+1) us is below bound B iff k < B.
    for (const auto& entry : *buckets) {
      auto k = entry.at(0).get<std::uint64_t>();
      auto n = entry.at(1).get<std::uint64_t>();
      while (b < bounds.size() && bounds[b] <= k) {
        cumulative[b] = total;
        ++b;
      }
      total += n;
    }
    for (; b < bounds.size(); ++b) cumulative[b] = total;
  }
  auto m = with_labels(labels);
  m.histogram.sample_count = total + overflows;
  m.histogram.sample_sum = h.contains("sum_ns") && h["sum_ns"].is_number() ? h["sum_ns"].get<double>() / 1e9 : 0.0;
  m.histogram.bucket.reserve(bounds.size() + 1);
  for (std::size_t i = 0; i < bounds.size(); ++i)
    m.histogram.bucket.push_back({cumulative[i], static_cast<double>(bounds[i]) / 1e6});
  m.histogram.bucket.push_back({total + overflows, std::numeric_limits<double>::infinity()});
  family(name, help, prometheus::MetricType::Histogram).metric.push_back(std::move(m));
}

LabelList cell_labels(const json& run, const json& cell_result) {
  const json& cell = at_or_null(cell_result, "cell");
  LabelList labels;
  labels.emplace_back("plan", text_of(at_or_null(run, "plan"), "name"));
  labels.emplace_back("host", text_of(cell, "host"));
  labels.emplace_back("cell", text_of(cell, "id"));
  std::set<std::string> used = {"plan", "host", "cell"};
  bool has_period = false;
  const json& axes = at_or_null(cell, "axes");
  if (axes.is_object()) {
    for (const auto& [k, v] : axes.items()) {
      std::string name = sanitize_label_name(k);
      std::string unique = name;
      for (int n = 2; used.count(unique); ++n) unique = name + "_" + std::to_string(n);
      used.insert(unique);
      if (unique == "period") has_period = true;
      labels.emplace_back(unique, v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  if (!has_period && !used.count("period") && cell.contains("period_ns") && cell["period_ns"].is_number_integer())
    labels.emplace_back("period", format_period(cell["period_ns"].get<long long>()));
  return labels;
}

LabelList grouping_key(const json& run, const json& cell_result) {
  auto labels = cell_labels(run, cell_result);
  labels.resize(3);  // plan, host, cell
  return labels;
}

void add_cell_metrics(MetricSet& set, const json& run, const json& cell_result) {
  const LabelList L = cell_labels(run, cell_result);
  const json& cell = at_or_null(cell_result, "cell");
  const std::string status = text_of(cell_result, "status");

  // Identity and versions.
  const json& facts = at_or_null(cell_result, "facts");
  const json& backend_facts = at_or_null(facts, "backend");
  const json& probe_facts = at_or_null(facts, "probe");
  std::string hypervisor = text_of(backend_facts, "hypervisor");
  if (hypervisor.empty()) hypervisor = text_of(at_or_null(at_or_null(cell_result, "plugins"), "backend"), "plugin");
  std::string qemu = text_of(backend_facts, "qemu_version");
  if (qemu.empty()) qemu = text_of(at_or_null(backend_facts, "qemu"), "qmp_version");  // "7.2.0" (kvm backend)
  if (qemu.empty()) qemu = text_of(at_or_null(backend_facts, "qemu"), "version");
  // The kernel the probe ran on: the host backend's target, the kvm backend's guest.
  std::string target_kernel = text_of(at_or_null(backend_facts, "target"), "kernel_release");
  if (target_kernel.empty())
    target_kernel = text_of(at_or_null(at_or_null(backend_facts, "guest"), "system"), "kernel_release");
  set.gauge("vmlat_info", "vmlat, kernel, hypervisor and QEMU versions of a cell (always 1)",
            plus(L, {{"vmlat_version", text_of(run, "vmlat_version")},
                     {"run_id", text_of(cell_result, "run_id")},
                     {"kernel", text_of(at_or_null(cell_result, "host_facts"), "kernel_release")},
                     {"preempt_model", text_of(at_or_null(cell_result, "host_facts"), "preempt_model")},
                     {"target_kernel", target_kernel},
                     {"hypervisor", hypervisor},
                     {"hypervisor_version", text_of(backend_facts, "hypervisor_version")},
                     {"qemu_version", qemu},
                     {"probe_engine", text_of(probe_facts, "engine")},
                     {"probe_version", text_of(probe_facts, "engine_version")},
                     {"status", status}}),
            1);
  set.gauge("vmlat_cell_measured", "1 if the cell was measured, 0 if not (infra-error, interrupted, skipped)", L,
            status == "measured" ? 1 : 0);

  // Timestamps.
  double run_start = iso8601_to_epoch(text_of(run, "started"));
  double run_end = iso8601_to_epoch(text_of(run, "finished"));
  const json& timings = at_or_null(cell_result, "timings");
  double cell_start = iso8601_to_epoch(text_of(timings, "started"));
  double cell_end = iso8601_to_epoch(text_of(timings, "finished"));
  if (run_start >= 0) set.gauge("vmlat_run_start_timestamp_seconds", "When the run started (Unix time)", L, run_start);
  if (run_end >= 0) set.gauge("vmlat_run_end_timestamp_seconds", "When the run finished (Unix time)", L, run_end);
  if (cell_start >= 0) set.gauge("vmlat_cell_start_timestamp_seconds", "When the cell started (Unix time)", L, cell_start);
  if (cell_end >= 0) set.gauge("vmlat_cell_end_timestamp_seconds", "When the cell finished (Unix time)", L, cell_end);
  if (cell.contains("period_ns"))
    set.gauge("vmlat_probe_period_seconds", "The probe's period", L, ns_to_s(cell["period_ns"]));
  if (cell.contains("duration_ns"))
    set.gauge("vmlat_measure_duration_seconds", "The cell's measuring time", L, ns_to_s(cell["duration_ns"]));

  // Latency per CPU and merged (cpu="all"): the default series without a
  // `series` label (as before named series existed, so dashboards keep
  // matching it), every other named series with series="<name>".
  std::vector<std::pair<LabelList, const json*>> series;
  auto add_series = [&](const json& owner, const LabelList& base) {
    const json& merged = at_or_null(owner, "merged");
    if (merged.is_object()) series.emplace_back(plus(base, {{"cpu", "all"}}), &merged);
    const json& per_cpu = at_or_null(owner, "per_cpu");
    if (per_cpu.is_object())
      for (const auto& [cpu, doc] : per_cpu.items()) series.emplace_back(plus(base, {{"cpu", cpu}}), &doc);
  };
  add_series(cell_result, L);
  const json& named = at_or_null(cell_result, "series");
  if (named.is_object())
    for (const auto& [name, doc] : named.items()) add_series(doc, plus(L, {{"series", name}}));
  static const std::pair<const char*, const char*> kQuantiles[] = {
      {"50", "p50_ns"}, {"90", "p90_ns"}, {"99", "p99_ns"}, {"99.9", "p99_9_ns"}, {"99.99", "p99_99_ns"}};
  for (const auto& [LC, doc] : series) {
    const json& stats = at_or_null(*doc, "stats");
    set.histogram("vmlat_latency_seconds", "Wake-up latency of the probe's periodic task", LC, at_or_null(*doc, "histogram"));
    set.gauge("vmlat_latency_max_seconds", "Worst-case (maximum) latency, exact", LC, ns_to_s(at_or_null(stats, "max_ns")));
    set.gauge("vmlat_latency_min_seconds", "Minimum latency, exact", LC, ns_to_s(at_or_null(stats, "min_ns")));
    set.gauge("vmlat_latency_mean_seconds", "Mean latency", LC, ns_to_s(at_or_null(stats, "mean_ns")));
    for (const auto& [q, key] : kQuantiles)
      set.gauge("vmlat_latency_percentile_seconds", "Nearest-rank latency percentile (1us resolution)",
                plus(LC, {{"percentile", q}}), ns_to_s(at_or_null(stats, key)));
    auto count = [&](const char* key) {
      const json& v = at_or_null(stats, key);
      return v.is_number() ? v.get<double>() : std::nan("");
    };
    set.counter("vmlat_samples_total", "Latency samples measured (including overflows)", LC, count("samples"));
    set.counter("vmlat_overflows_total", "Samples at or above the probe's histogram range (value unknown)", LC,
                count("overflows"));
    set.counter("vmlat_missed_periods_total", "Activations skipped because the task woke up too late", LC,
                count("missed_periods"));
  }

  // Gates: 1 pass, 0 fail or error; skipped gates are left out.
  const json& gates = at_or_null(cell_result, "gates");
  if (gates.is_array()) {
    for (const auto& g : gates) {
      std::string verdict = text_of(g, "verdict");
      if (verdict == "skipped") continue;
      LabelList LG = plus(L, {{"gate", text_of(g, "gate")}, {"stat", text_of(g, "stat")}});
      if (std::string s = text_of(g, "series"); !s.empty()) LG.emplace_back("series", s);
      // A flaky gate (failed, then passed on a retest) passed; it is also
      // exported as vmlat_gate_flaky so that flakiness can be watched.
      set.gauge("vmlat_gate_status", "Gate verdict: 1 pass (or flaky: passed on retest), 0 fail (or could not be evaluated)",
                LG, verdict == "pass" || verdict == "flaky" ? 1 : 0);
      set.gauge("vmlat_gate_flaky", "1 when the gate failed and then passed on a retest ([plan] retest)", LG,
                verdict == "flaky" ? 1 : 0);
      set.gauge("vmlat_gate_bound_seconds", "The gate's bound", LG, ns_to_s(at_or_null(g, "bound_ns")));
      set.gauge("vmlat_gate_value_seconds", "The statistic the gate bounds, as measured", LG,
                ns_to_s(at_or_null(g, "value_ns")));
    }
  }
}

namespace {

// Same bytes as prometheus-cpp 1.0's TextSerializer (checked by a unit test),
// several times faster: no ostream, integers through to_chars, le strings cached.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "Nan";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 1e15 && !(v == 0 && std::signbit(v))) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    out.append(buf, r.ptr);
  } else {
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%.16g", v);  // ostream's default format at precision 16
    out.append(buf, static_cast<std::size_t>(n));
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_escaped(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\' || c == '"' || c == '\n') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
}

// name{labels[,extra="value"]}<space>
void append_head(std::string& out, const std::string& name, const char* suffix, const prometheus::ClientMetric& m,
                 const char* extra = nullptr, const std::string* extra_value = nullptr) {
  out += name;
  out += suffix;
  if (!m.label.empty() || extra) {
    out += '{';
    bool first = true;
    for (const auto& l : m.label) {
      if (!first) out += ',';
      first = false;
      out += l.name;
      out += "=\"";
      append_escaped(out, l.value);
      out += '"';
    }
    if (extra) {
      if (!first) out += ',';
      out += extra;
      out += "=\"";
      append_escaped(out, *extra_value);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

const std::string& le_text(double bound) {
  static const std::vector<std::pair<double, std::string>> cache = [] {
    std::vector<std::pair<double, std::string>> c;
    for (auto b : bucket_bounds_us()) {
      double v = static_cast<double>(b) / 1e6;
      std::string s;
      append_double(s, v);
      c.emplace_back(v, s);
    }
    c.emplace_back(std::numeric_limits<double>::infinity(), "+Inf");
    return c;
  }();
  for (const auto& [v, s] : cache)
    if (v == bound) return s;
  thread_local std::string other;
  other.clear();
  append_double(other, bound);
  return other;
}

}  // namespace

std::string to_text(const std::vector<prometheus::MetricFamily>& families) {
  std::string out;
  std::size_t estimate = 0;
  for (const auto& f : families) estimate += f.metric.size() * (f.type == prometheus::MetricType::Histogram ? 4000 : 200);
  out.reserve(estimate);
  for (const auto& f : families) {
    if (!f.help.empty()) {
      out += "# HELP ";
      out += f.name;
      out += ' ';
      out += f.help;
      out += '\n';
    }
    const char* type = "untyped";
    switch (f.type) {
      case prometheus::MetricType::Counter: type = "counter"; break;
      case prometheus::MetricType::Gauge: type = "gauge"; break;
      case prometheus::MetricType::Summary: type = "summary"; break;
      case prometheus::MetricType::Histogram: type = "histogram"; break;
      default: break;
    }
    out += "# TYPE ";
    out += f.name;
    out += ' ';
    out += type;
    out += '\n';
    for (const auto& m : f.metric) {
      switch (f.type) {
        case prometheus::MetricType::Counter:
          append_head(out, f.name, "", m);
          append_double(out, m.counter.value);
          out += '\n';
          break;
        case prometheus::MetricType::Gauge:
          append_head(out, f.name, "", m);
          append_double(out, m.gauge.value);
          out += '\n';
          break;
        case prometheus::MetricType::Histogram: {
          append_head(out, f.name, "_count", m);
          append_uint(out, m.histogram.sample_count);
          out += '\n';
          append_head(out, f.name, "_sum", m);
          append_double(out, m.histogram.sample_sum);
          out += '\n';
          bool has_inf = false;
          for (const auto& b : m.histogram.bucket) {
            append_head(out, f.name, "_bucket", m, "le", &le_text(b.upper_bound));
            append_uint(out, b.cumulative_count);
            out += '\n';
            has_inf = std::isinf(b.upper_bound);
          }
          if (!has_inf) {
            static const std::string inf = "+Inf";
            append_head(out, f.name, "_bucket", m, "le", &inf);
            append_uint(out, m.histogram.sample_count);
            out += '\n';
          }
          break;
        }
        default:
          // vmlat emits no summaries or untyped metrics: defer to prometheus-cpp.
          out += prometheus::TextSerializer().Serialize({prometheus::MetricFamily{f.name, "", f.type, {m}}})
                     .substr(std::string("# TYPE " + f.name + " " + type + "\n").size());
      }
    }
  }
  return out;
}

std::string to_text_reference(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

namespace {

// The `facts` label: the changed facts' names, comma-separated, at most
// kMaxFacts of them and kMaxFactsBytes bytes (cut at a name, never inside a
// UTF-8 character), "+N more" for the rest.
std::string facts_label(const std::vector<std::string>& facts) {
  constexpr std::size_t kMaxFacts = 6, kMaxFactsBytes = 200;
  std::string out;
  std::size_t shown = 0;
  for (const auto& f : facts) {
    if (shown == kMaxFacts || out.size() + f.size() + 2 > kMaxFactsBytes) break;
    out += (out.empty() ? "" : ", ") + f;
    ++shown;
  }
  if (shown < facts.size()) out += (out.empty() ? "+" : ", +") + std::to_string(facts.size() - shown) + " more";
  return out;
}

}  // namespace

void add_change_point_metrics(MetricSet& set, const std::string& plan, std::size_t runs,
                              const std::vector<ChangePointMetric>& changes) {
  set.gauge("vmlat_history_runs", "Complete runs of the plan that vmlat history read", {{"plan", plan}},
            static_cast<double>(runs));
  set.gauge("vmlat_history_change_points", "Change points vmlat history found in the plan's runs", {{"plan", plan}},
            static_cast<double>(changes.size()));
  for (const auto& c : changes) {
    const LabelList labels = {{"plan", plan},    {"host", c.host},       {"cell", c.cell},
                              {"stat", c.stat},  {"run_id", c.run_id},   {"facts", facts_label(c.facts)}};
    if (c.run_start_s >= 0)
      set.gauge("vmlat_change_point_timestamp_seconds", "Start of the first run after a change point of vmlat history",
                labels, c.run_start_s);
    if (c.before_ns > 0)
      set.gauge("vmlat_change_point_ratio", "A change point's level after it over the level before it", labels,
                c.after_ns / c.before_ns);
  }
}

}  // namespace vmlat::exporter
