// JUnit XML of a run's cells (`vmlat run --junit`): one testcase per cell x
// gate (or one per cell without gates); infrastructure errors as <error>,
// gate failures as <failure>, flaky gates as passing with <flakyFailure>;
// then one per claim of run.json's "expects" (classname <plan>.expect).
#pragma once

#include <string>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat {

// From run.json and the cells' result.json documents.
std::string junit_xml(const std::string& plan_name, const json& run, const std::vector<json>& cell_results);

}  // namespace vmlat
