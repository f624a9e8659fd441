#include "page_data.hpp"

#include <zlib.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "base64.hpp"
#include "json_access.hpp"
#include "tails.hpp"
#include "traces.hpp"

namespace vmlat::report {

namespace {

void put_varint(std::string& out, std::uint64_t v) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  while (v >= 32) {
    out += kDigits[32 + (v & 31)];
    v >>= 5;
  }
  out += kDigits[v];
}

// The merged histogram is left out of the page when it is exactly the sum
// of the CPUs' (the page adds them up): half the bytes of a 2-CPU cell.
bool is_sum_of(const HistogramData& merged, const std::vector<HistogramData>& cpus) {
  std::map<std::uint64_t, std::uint64_t> sum;
  std::uint64_t overflows = 0;
  long long min_ns = cpus.front().min_ns, max_ns = cpus.front().max_ns;
  for (const auto& h : cpus) {
    for (const auto& [k, c] : h.buckets) sum[k] += c;
    overflows += h.overflows;
    min_ns = std::min(min_ns, h.min_ns);
    max_ns = std::max(max_ns, h.max_ns);
  }
  return overflows == merged.overflows && min_ns == merged.min_ns && max_ns == merged.max_ns &&
         std::equal(sum.begin(), sum.end(), merged.buckets.begin(), merged.buckets.end(),
                    [](const auto& a, const auto& b) { return a.first == b.first && a.second == b.second; });
}

json number_or_null(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_number() ? v : json(nullptr);
}

json ns_or_null(const json& j, const char* key) {
  auto v = integer_at(j, key);
  return v ? json(*v) : json(nullptr);
}

// [label, samples, min, mean, p50, p90, p99, p99.9, p99.99, max, overflows, missed periods text]
json stats_row(const std::string& label, const json& doc) {
  const json& s = member(doc, "stats");
  json row = json::array({label, number_or_null(s, "samples")});
  for (const char* k : {"min_ns", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "p99_99_ns", "max_ns"}) row.push_back(ns_or_null(s, k));
  row.push_back(number_or_null(s, "overflows"));
  row.push_back(missed_periods_text(s));
  return row;
}

json series_json(const Series& s, const Cell* base_cell) {
  json out{{"name", s.name}, {"rows", json::array()}};
  if (s.merged) out["rows"].push_back(stats_row("all", *s.merged));
  for (const auto& [cpu, doc] : s.per_cpu) out["rows"].push_back(stats_row(cpu, *doc));
  auto merged = s.merged ? decode_histogram(member(*s.merged, "histogram")) : std::nullopt;
  if (!merged) return out;
  // One line per CPU on the CCDF for 2 to 8 CPUs (the plot's colours), all or none.
  std::vector<HistogramData> cpus;
  if (s.per_cpu.size() > 1 && s.per_cpu.size() <= 8)
    for (const auto& [cpu, doc] : s.per_cpu)
      if (auto h = decode_histogram(member(*doc, "histogram"))) cpus.push_back(std::move(*h));
  if (!cpus.empty() && cpus.size() == s.per_cpu.size()) {
    json names = json::array(), encoded = json::array();
    for (std::size_t i = 0; i < cpus.size(); ++i) {
      names.push_back(s.per_cpu[i].first);
      encoded.push_back(encode_histogram(cpus[i]));
    }
    out["cpus"] = std::move(names);
    out["hc"] = std::move(encoded);
    out["h"] = is_sum_of(*merged, cpus) ? std::string() : encode_histogram(*merged);
  } else {
    out["h"] = encode_histogram(*merged);
  }
  if (base_cell)
    for (const auto& bs : base_cell->series)
      if (bs.name == s.name && bs.merged)
        if (auto b = decode_histogram(member(*bs.merged, "histogram"))) out["hb"] = encode_histogram(*b);
  return out;
}

// Fact rows shared by many cells (the same guest image, the same QEMU) are
// stored once for the page; a cell lists the rows it has.
class FactTable {
 public:
  int row(const std::string& key, const std::string& value) {
    auto [it, added] = ids_.emplace(std::make_pair(key, value), static_cast<int>(rows_.size()));
    if (added) rows_.push_back(json::array({key, value}));
    return it->second;
  }
  json take() { return std::move(rows_); }

 private:
  std::map<std::pair<std::string, std::string>, int> ids_;
  json rows_ = json::array();
};

// Scalar facts of one plugin, flattened to dotted keys (arrays such as argv left out).
void flat_facts(FactTable& table, json& rows, const std::string& prefix, const json& j, int depth) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it.value().is_object()) {
      if (depth < 3) flat_facts(table, rows, key, it.value(), depth + 1);
    } else if (!it.value().is_array() && !it.value().is_null()) {
      rows.push_back(table.row(key, it.value().is_string() ? it.value().get<std::string>() : it.value().dump()));
    }
  }
}

// The cell's plugins, host facts (or where they are the run's, one row
// saying so: "hs"), plugin facts and phase timings.
void facts_json(FactTable& table, const Run& run, const Cell& c, json& out) {
  const json& r = *c.result;
  json rows = json::array();
  const json& plugins = member(r, "plugins");
  for (const char* kind : {"backend", "workload", "probe"}) {
    const json& p = member(plugins, kind);
    if (!p.is_object()) continue;
    rows.push_back(table.row(std::string(kind) + " plugin", text_of(p, "plugin") + " " + text_of(p, "version") + " (instance " +
                                                              text_of(p, "instance") +
                                                              (p.contains("where") ? ", where " + text_of(p, "where") : "") + ")"));
  }
  const json& host_facts = member(r, "host_facts");
  std::string host = text_of(member(r, "cell"), "host");
  const json& run_host = member(member((c.stored ? c.stored : run.stored)->run, "hosts"), host.c_str());
  if (host_facts.is_object() && host_facts == run_host)
    out["hs"] = json::array({host, text_of(host_facts, "kernel_release"), text_of(host_facts, "preempt_model"), rows.size()});
  else
    flat_facts(table, rows, "host", host_facts, 1);
  const json& facts = member(r, "facts");
  for (const char* kind : {"backend", "workload", "probe"}) flat_facts(table, rows, kind, member(facts, kind), 1);
  flat_facts(table, rows, "timings", member(r, "timings"), 1);
  out["fa"] = std::move(rows);
}

json gates_json(const Cell& c) {
  json out = json::array();
  for (const json* g : c.gates)
    out.push_back(json::array({text_of(*g, "gate"), text_of(*g, "stat"), text_of(*g, "verdict"), ns_or_null(*g, "value_ns"),
                               ns_or_null(*g, "bound_ns"), text_of(*g, "message")}));
  return out;
}

json tail_fields(const TailRow& row) {
  return json::array({row.model, row.threshold, row.exceedances, row.gof_p, row.rl1h, row.rl24h, row.bounds});
}

}  // namespace

std::string encode_histogram(const HistogramData& h) {
  std::string out = std::to_string(h.min_ns) + "," + std::to_string(h.max_ns) + "," + std::to_string(h.overflows) + ",";
  out.reserve(out.size() + 2 * h.buckets.size());
  std::uint64_t next = 0;  // the bucket that would follow the previous one directly
  for (const auto& [k, c] : h.buckets) {
    if (k == next) {
      put_varint(out, c * 2);
    } else {
      put_varint(out, c * 2 + 1);
      put_varint(out, k - next);
    }
    next = k + 1;
  }
  return out;
}

std::string script_json(const json& j) {
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + 64);
  for (char ch : text) {
    if (ch == '<') out += "\\u003c";  // only ever inside a string: JSON has no '<' of its own
    else out += ch;
  }
  return out;
}

std::string deflate_base64(std::string_view text) {
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::string packed(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &size, reinterpret_cast<const Bytef*>(text.data()),
                static_cast<uLong>(text.size()), Z_DEFAULT_COMPRESSION) != Z_OK)
    throw std::runtime_error("zlib could not compress the report's data");
  packed.resize(size);
  return base64(packed);
}

PageData page_data(const ReportInput& in) {
  const Run& run = *in.run;
  PageData page;
  // Axes in the order the cells first name them; a cell refers to values by number.
  std::vector<std::string> axis_names;
  std::map<std::string, std::size_t> axis_of;
  std::vector<std::map<std::string, int>> value_of;
  json axes = json::array();
  for (const auto& c : run.cells)
    for (const auto& [k, v] : c.axes) {
      auto [it, added] = axis_of.emplace(k, axis_names.size());
      if (added) {
        axis_names.push_back(k);
        value_of.emplace_back();
        axes.push_back(json{{"name", k}, {"values", json::array()}});
      }
      auto [vit, new_value] = value_of[it->second].emplace(v, static_cast<int>(value_of[it->second].size()));
      if (new_value) axes[it->second]["values"].push_back(v);
    }
  std::set<std::string> regressed;
  if (in.comparison)
    for (const auto& cc : in.comparison->cells)
      if (cc.regression()) regressed.insert(cc.id);
  std::map<std::string, const Cell*> baseline_cells;
  if (in.baseline)
    for (const auto& b : in.baseline->cells) baseline_cells.emplace(b.id, &b);

  FactTable facts;
  json index_cells = json::array();
  for (const auto& c : run.cells) {
    json positions(std::vector<int>(axis_names.size(), -1));
    for (const auto& [k, v] : c.axes) positions[axis_of.at(k)] = value_of[axis_of.at(k)].at(v);
    const json* merged = c.series.empty() ? nullptr : c.series.front().merged;
    json entry{{"id", c.id}, {"a", std::move(positions)}, {"st", c.status},
               {"max", c.max_ns ? json(*c.max_ns) : json(nullptr)},
               {"p99", merged ? ns_or_null(member(*merged, "stats"), "p99_ns") : json(nullptr)}};
    if (std::string v = c.worst_verdict(); !v.empty()) entry["v"] = v;
    if (!c.gates.empty()) entry["g"] = gates_json(c);
    if (regressed.count(c.id)) entry["reg"] = 1;
    if (run.merged()) {
      entry["run"] = c.run_id;
      if (!c.also_in.empty()) entry["also"] = c.also_in;
    }
    index_cells.push_back(std::move(entry));

    json d = json::object();
    if (!c.error.empty()) {
      std::string phase = c.result ? text_of(*c.result, "error_phase") : "";
      d["err"] = (phase.empty() ? "" : phase + ": ") + c.error;
    }
    auto found = baseline_cells.find(c.id);
    const Cell* base_cell = found == baseline_cells.end() ? nullptr : found->second;
    if (!c.series.empty()) {
      d["s"] = json::array();
      for (const auto& s : c.series) d["s"].push_back(series_json(s, base_cell));
    }
    cell_traces_data(run, c, in.link_artifacts, d);
    if (std::string timeline = cell_timeline_html(run, c, in.link_artifacts); !timeline.empty()) {
      page.timelines += "<template id=\"timeline-" + std::to_string(c.index) + "\">" + timeline + "</template>";
      d["tl"] = 1;
    }
    if (c.result) {
      const json& warnings = member(*c.result, "warnings");
      if (warnings.is_array() && !warnings.empty()) {
        d["w"] = json::array();
        for (const auto& w : warnings) d["w"].push_back(w.is_string() ? w.get<std::string>() : w.dump());
      }
      facts_json(facts, run, c, d);
    }
    page.cells.push_back(std::move(d));
  }

  // The tail model: a row per cell and per CPU, filled in when the table is unfolded.
  json tails = json::array(), lengths = json::array();
  const auto fits = run_tails(run, in.tails);
  for (const auto& c : run.cells) {
    const auto& tail = fits[static_cast<std::size_t>(c.index)];
    if (!tail) continue;
    const TailRow row = tail_row(*tail);
    json per_cpu = json::array();
    for (const auto& [cpu, fit] : tail->per_cpu) {
      json r = tail_fields(tail_row(CellTail{fit, {}, {}}));
      r.insert(r.begin(), cpu);
      per_cpu.push_back(std::move(r));
    }
    json r = tail_fields(row);
    r.insert(r.begin(), c.index);
    r.push_back(std::move(per_cpu));
    tails.push_back(std::move(r));
    for (const auto& s : row.run_lengths) lengths.push_back(json::array({c.index, s}));
  }

  page.index = json{{"schema", "vmlat-report-page/1"}, {"axes", std::move(axes)}, {"cells", std::move(index_cells)},
                    {"baseline", in.baseline ? json(in.baseline->run_id) : json(nullptr)}};
  // The overlay figures: the plan's, then the report's own.
  auto overlays = plan_overlays(run);
  page.default_figures = default_figures_wanted(run);
  if (page.default_figures)
    for (auto& o : default_overlays(run)) overlays.push_back(std::move(o));
  json specs = json::array();
  for (const auto& o : overlays) {
    Figure f{o.kind, o.draw, o.title, {}, 0, o.left_out, specs.size(), false};
    json lines = json::array();
    for (const auto& line : o.lines) {
      const Cell& c = run.cells[static_cast<std::size_t>(line.cell)];
      const json* merged = c.series.empty() ? nullptr : c.series.front().merged;
      if (!merged || !decode_histogram(member(*merged, "histogram"))) continue;
      f.ids += (f.ids.empty() ? "" : " ") + c.id;
      lines.push_back(json::array({line.cell, line.label}));
    }
    f.lines = lines.size();
    f.drawn = lines.size() >= 2;
    if (f.drawn) specs.push_back(json{{"kind", o.kind}, {"draw", o.draw}, {"lines", std::move(lines)}});
    if (f.drawn || o.kind == "plan") page.figures.push_back(std::move(f));
  }
  page.shared = json{{"facts", facts.take()}, {"figures", std::move(specs)}, {"tails", std::move(tails)}, {"run_lengths", std::move(lengths)}};
  return page;
}

std::string page_data_html(const PageData& data) {
  auto packed = [](const json& j) { return deflate_base64(j.dump(-1, ' ', false, json::error_handler_t::replace)); };
  std::string out = "<script type=\"application/json\" id=\"vmlat-index\">" + script_json(data.index) + "</script>";
  out += "<script type=\"application/octet-stream\" data-encoding=\"deflate+base64\" id=\"vmlat-shared\">" + packed(data.shared) +
         "</script>";
  for (std::size_t first = 0; first < data.cells.size(); first += kCellsPerChunk) {
    const std::size_t n = std::min(kCellsPerChunk, data.cells.size() - first);
    json chunk = json::array();
    for (std::size_t i = first; i < first + n; ++i) chunk.push_back(data.cells[i]);
    out += "<script type=\"application/octet-stream\" data-encoding=\"deflate+base64\" class=\"vmlat-cells\" data-first=\"" +
           std::to_string(first) + "\" data-count=\"" + std::to_string(n) + "\">" + packed(chunk) + "</script>";
  }
  return out;
}

}  // namespace vmlat::report
