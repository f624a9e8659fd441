// Judging a cell by the plan's gates (docs/plan-format.md, [[gate]]): the
// rules every caller shares (the runner, remote cells, resume, the monitor's
// metrics). A cell that was not measured never passes a gate.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "cell/status.hpp"
#include "gates/gate_result.hpp"
#include "plan.hpp"
#include "vmlat/histogram.hpp"

namespace vmlat {

// The statistic a gate bounds, read from a merged histogram.
std::chrono::nanoseconds gate_statistic(const GateSpec& gate, const Histogram& merged);

// A return-level gate's statistic (`stat = "rl1h"`): the worst case to expect
// once in `gate.horizon_s` of operation, from the tail model of the histogram
// measured over `measured_s` seconds (docs/statistics.md; the report's tails
// use the same time, so a gate and the report agree); where the model is
// rejected or the tail too thin, the measured max, and `basis` says which
// ("gpd" or "empirical: <why>").
std::chrono::nanoseconds return_level_statistic(const GateSpec& gate, const Histogram& merged, double measured_s,
                                                std::string* basis = nullptr);

// How long a cell measured when the measure phase's time is not known: its
// samples at one per period on each of its CPUs (all CPUs at once, so the
// merged histogram's samples x period over the CPUs measured).
double nominal_measured_seconds(const CellSpec& cell, std::uint64_t samples);

// `merged` is the cell's default series; `named` (optional) its series by
// name, the default included: a gate with `series` reads that one, and is an
// `error` when the cell has no such series. `facts` (result.json's facts:
// "backend", ...) is what lint gates read; without it they are `error`.
// `measured_s`: the measure phase's time (timings.phases.measure_s), which
// return-level gates scale to their horizon; 0: nominal_measured_seconds.
std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, CellStatus status,
                                       const std::string& cell_error, const Histogram* merged,
                                       const std::map<std::string, Histogram>* named = nullptr,
                                       const json* facts = nullptr, double measured_s = 0);

// A lint gate on one cell: facts.backend.lint's findings of the gate's
// severity (error; warning: errors and warnings) fail it.
GateResult evaluate_lint_gate(const GateSpec& gate, CellStatus status, const std::string& cell_error, const json* facts);

}  // namespace vmlat
