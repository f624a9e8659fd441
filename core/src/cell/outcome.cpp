#include "cell/outcome.hpp"

#include "gates/evaluate.hpp"
#include "vmlat/plugin.hpp"

namespace vmlat {

json axes_json(const CellSpec& spec) {
  json axes = json::object();
  for (const auto& [k, v] : spec.axes) axes[k] = v;
  return axes;
}

namespace {

std::string string_or_empty(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json result_json(const CellOutcome& o) {
  if (o.kept) return o.document;
  json r = o.document.is_object() ? o.document : json::object();
  r["status"] = status_name(o.status);
  r["error"] = o.error.empty() ? json(nullptr) : json(o.error);
  r["error_phase"] = o.error_phase.empty() ? json(nullptr) : json(o.error_phase);
  r["gates"] = gates_json(o.gates);
  if (!o.retests.is_null()) r["retests"] = o.retests;
  return r;
}

json unmeasured_document(const std::string& run_id, const Cell& cell, const json& host_facts) {
  return json{{"schema", "vmlat-cell-result/1"},
              {"run_id", run_id},
              {"cell", {{"id", cell.spec.id}, {"index", cell.index}, {"axes", axes_json(cell.spec)}, {"host", cell.spec.host_name}}},
              {"status", nullptr},
              {"error", nullptr},
              {"error_phase", nullptr},
              {"host_facts", host_facts},
              {"gates", nullptr}};
}

CellOutcome unmeasured_outcome(const Plan& plan, const Cell& cell, const std::string& run_id, CellStatus status,
                               const std::string& error, const std::string& phase, const json& host_facts) {
  CellOutcome o;
  o.status = status;
  o.error = error;
  o.error_phase = phase;
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, nullptr);
  o.document = unmeasured_document(run_id, cell, host_facts);
  return o;
}

ResultHead read_result_head(const json& result) {
  ResultHead h;
  if (!result.is_object()) return h;
  if (auto c = result.find("cell"); c != result.end() && c->is_object()) h.cell_id = string_or_empty(*c, "id");
  if (auto s = result.find("status"); s != result.end() && s->is_string()) h.status = parse_status(s->get<std::string>());
  h.error = string_or_empty(result, "error");
  h.error_phase = string_or_empty(result, "error_phase");
  return h;
}

std::optional<CellOutcome> outcome_from_result(const json& result, std::string* why) {
  CellOutcome o;
  const ResultHead head = read_result_head(result);
  o.status = head.status.value_or(CellStatus::infra_error);
  o.error = head.error;
  o.error_phase = head.error_phase;
  o.document = result;
  if (auto r = result.find("retests"); r != result.end()) o.retests = *r;
  try {
    if (auto m = result.find("merged"); m != result.end() && m->is_object()) {
      o.merged = Histogram::from_json(m->at("histogram"));
      o.series_merged[result.value("default_series", std::string(default_series_name))] = *o.merged;
    }
    if (auto s = result.find("series"); s != result.end() && s->is_object())
      for (const auto& [name, doc] : s->items()) o.series_merged[name] = Histogram::from_json(doc.at("merged").at("histogram"));
  } catch (const std::exception& e) {
    if (why) *why = std::string("unreadable histogram: ") + e.what();
    return std::nullopt;
  }
  return o;
}

void record_in_run(json& entry, const CellOutcome& o) {
  entry["status"] = status_name(o.status);
  if (!o.error.empty()) entry["error"] = o.error;
  if (o.merged && !o.merged->empty()) entry["max_ns"] = o.merged->max().count();
  json verdicts = json::object();
  for (const auto& g : o.gates) verdicts[g.gate] = verdict_name(g.verdict);
  entry["gates"] = verdicts;
}

}  // namespace vmlat
