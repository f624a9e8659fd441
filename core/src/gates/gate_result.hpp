// One gate's result on one cell: what result.json's gates[] holds.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "gates/verdict.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct GateResult {
  std::string gate;
  std::string stat;
  std::string series;  // empty: the cell's default series
  std::chrono::nanoseconds bound{0};
  std::chrono::nanoseconds value{0};
  Verdict verdict = Verdict::error;
  std::string message;
  json extra = json::object();  // more fields for result.json (a regression gate's baseline)
};

// result.json's gates[]: one object per result, in order.
json gates_json(const std::vector<GateResult>& gates);

}  // namespace vmlat
