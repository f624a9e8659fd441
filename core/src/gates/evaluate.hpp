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
// once in `gate.horizon_s` of operation at the cell's period, from the tail
// model of the histogram measured over samples x period (docs/statistics.md);
// where the model is rejected or the tail too thin, the measured max, and
// `basis` says which ("gpd" or "empirical: <why>").
std::chrono::nanoseconds return_level_statistic(const GateSpec& gate, const Histogram& merged,
                                                std::chrono::nanoseconds period, std::string* basis = nullptr);

// `merged` is the cell's default series; `named` (optional) its series by
// name, the default included: a gate with `series` reads that one, and is an
// `error` when the cell has no such series. `facts` (result.json's facts:
// "backend", ...) is what lint gates read; without it they are `error`.
std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, CellStatus status,
                                       const std::string& cell_error, const Histogram* merged,
                                       const std::map<std::string, Histogram>* named = nullptr,
                                       const json* facts = nullptr);

// A lint gate on one cell: facts.backend.lint's findings of the gate's
// severity (error; warning: errors and warnings) fail it.
GateResult evaluate_lint_gate(const GateSpec& gate, CellStatus status, const std::string& cell_error, const json* facts);

}  // namespace vmlat
