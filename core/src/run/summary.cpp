#include "run/summary.hpp"

#include <algorithm>
#include <ostream>

#include "gates/expect.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s += std::string(width - s.size(), ' ');
  return s;
}

static void print_table(std::ostream& out, const std::vector<Cell>& cells, const std::vector<CellOutcome>& outcomes, bool with_hosts) {
  struct Row { std::string cell, host, samples, p99, max, gate, bound, verdict; };
  std::vector<Row> rows;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& o = outcomes[i];
    Row base{cells[i].spec.id, cells[i].spec.host_name, "-", "-", "-", "-", "-", status_name(o.status)};
    if (o.merged && !o.merged->empty()) {
      auto s = o.merged->stats();
      base.samples = std::to_string(s.samples);
      base.p99 = format_latency(s.p99);
      base.max = format_latency(s.max);
    }
    if (!o.measured())
      base.verdict = (o.status == CellStatus::infra_error ? std::string("ERROR") : std::string(status_name(o.status))) +
                     (o.error.empty() ? "" : ": " + o.error);
    if (o.gates.empty() || !o.measured()) {
      if (o.measured()) base.verdict = "measured (no gate)";
      rows.push_back(base);
      continue;
    }
    for (const auto& g : o.gates) {
      Row r = base;
      r.gate = g.gate;
      r.bound = g.stat + " <= " + format_latency(g.bound);
      if (g.extra.contains("tolerance") && (g.verdict == Verdict::skipped || g.verdict == Verdict::error))
        r.bound = g.stat + " <= baseline+" + g.extra["tolerance"].get<std::string>();
      r.verdict = g.verdict == Verdict::pass    ? "PASS"
                  : g.verdict == Verdict::fail  ? "FAIL: " + g.message
                  : g.verdict == Verdict::flaky ? "FLAKY: " + g.message
                                                : std::string(verdict_name(g.verdict)) + (g.message.empty() ? "" : ": " + g.message);
      rows.push_back(r);
    }
  }
  std::vector<std::size_t> w = {4, 4, 7, 3, 3, 4, 5};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.cell.size());
    w[1] = std::max(w[1], r.host.size());
    w[2] = std::max(w[2], r.samples.size());
    w[3] = std::max(w[3], r.p99.size());
    w[4] = std::max(w[4], r.max.size());
    w[5] = std::max(w[5], r.gate.size());
    w[6] = std::max(w[6], r.bound.size());
  }
  out << pad("CELL", w[0]) << "  " << (with_hosts ? pad("HOST", w[1]) + "  " : "") << pad("SAMPLES", w[2]) << "  "
      << pad("P99", w[3]) << "  " << pad("MAX", w[4]) << "  " << pad("GATE", w[5]) << "  " << pad("BOUND", w[6]) << "  VERDICT\n";
  for (const auto& r : rows)
    out << pad(r.cell, w[0]) << "  " << (with_hosts ? pad(r.host, w[1]) + "  " : "") << pad(r.samples, w[2]) << "  "
        << pad(r.p99, w[3]) << "  " << pad(r.max, w[4]) << "  " << pad(r.gate, w[5]) << "  " << pad(r.bound, w[6]) << "  "
        << r.verdict << "\n";
}


std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s.size() > 300 ? s.substr(0, 300) + "..." : s;
}

Tally tally(const std::vector<CellOutcome>& outcomes) {
  Tally t;
  t.cells = static_cast<int>(outcomes.size());
  for (const auto& o : outcomes) {
    // A gate of a measured cell that could not be evaluated (its baseline is unreadable): exit 3.
    for (const auto& g : o.gates)
      if (o.measured() && g.verdict == Verdict::error) ++t.gate_errors;
    if (o.measured()) ++t.measured;
    else if (o.status == CellStatus::infra_error) ++t.infra;
    else if (o.status == CellStatus::skipped) ++t.skipped;
    else ++t.interrupted;
    for (const auto& g : o.gates) {
      if (g.verdict == Verdict::fail) ++t.gates_failed;
      if (g.verdict == Verdict::pass) ++t.gates_passed;
      if (g.verdict == Verdict::flaky) ++t.gates_flaky;
    }
  }
  return t;
}

int Tally::exit_code(const Plan& plan, bool interrupted_run) const {
  if (interrupted_run) return exit_code::interrupted;
  if (gates_failed || expects_failed || (gates_flaky && plan.flaky_fails)) return exit_code::gate_failed;
  if (infra || gate_errors) return exit_code::infra;
  return exit_code::pass;
}

json Tally::summary() const {
  json s{{"cells", cells},   {"measured", measured},       {"infra_errors", infra},
         {"skipped", skipped},      {"interrupted", interrupted}, {"gates_passed", gates_passed},
         {"gates_failed", gates_failed}, {"gates_flaky", gates_flaky}};
  if (has_expects)
    s["expects"] = json{{"holds", expects_held}, {"violated", expects_violated}, {"inconclusive", expects_inconclusive},
                        {"failed", expects_failed}};
  return s;
}

std::vector<ExpectResult> judge_run_expects(const Plan& plan, const std::vector<json>& cell_results, Tally& t) {
  if (plan.expects.empty()) return {};
  std::vector<ExpectCell> cells;
  for (const auto& r : cell_results)
    if (auto c = expect_cell(r)) cells.push_back(std::move(*c));  // one run: no run id beside each cell
  auto results = judge_expects(plan.expects, cells);
  t.has_expects = true;
  for (const auto& r : results) {
    if (r.verdict == "holds") ++t.expects_held;
    else if (r.verdict == "violated") ++t.expects_violated;
    else ++t.expects_inconclusive;
    if (r.failed()) ++t.expects_failed;
  }
  return results;
}

void print_expects(std::ostream& out, const std::vector<ExpectResult>& expects) {
  if (expects.empty()) return;
  out << "claims ([[expect]]):\n";
  for (const auto& e : expects)
    out << "  " << pad(e.verdict, 12) << " " << one_line(e.spec.name) << (e.failed() ? "  (gate: fails the run)" : "") << "\n"
        << "               " << one_line(e.reason) << "\n";
}

void print_summary(std::ostream& out, const Plan& plan, const std::vector<Cell>& cells,
                   const std::vector<CellOutcome>& outcomes, const Tally& t, bool with_hosts) {
  print_table(out, cells, outcomes, with_hosts);
  out << "\n" << t.measured << "/" << cells.size() << " cells measured";
  if (t.infra) out << ", " << t.infra << " infrastructure error(s)";
  if (t.skipped) out << ", " << t.skipped << " not runnable here";
  if (t.interrupted) out << ", " << t.interrupted << " interrupted/not run";
  out << "; gates: " << t.gates_passed << " passed, " << t.gates_failed << " failed";
  if (t.gate_errors) out << ", " << t.gate_errors << " could not be evaluated";
  if (t.gates_flaky) out << ", " << t.gates_flaky << " flaky" << (plan.flaky_fails ? " (counted as failed: [plan] flaky = \"fail\")" : "");
  if (t.has_expects)
    out << "; claims: " << t.expects_held << " hold, " << t.expects_violated << " violated" << (t.expects_failed ? " (" + std::to_string(t.expects_failed) + " gating)" : "")
        << ", " << t.expects_inconclusive << " inconclusive";
  out << "\n";
}

}  // namespace vmlat
