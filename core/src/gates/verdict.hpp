// A gate's verdict on a cell (docs/results-format.md, "gates"): the words of
// result.json, run.json and JUnit.
#pragma once

#include <optional>
#include <string_view>

namespace vmlat {

// flaky: failed, then passed when the cell was measured again ([plan]
// retest); not a failure unless [plan] flaky = "fail".
enum class Verdict { pass, fail, error, skipped, flaky };
const char* verdict_name(Verdict v);
std::optional<Verdict> parse_verdict(std::string_view name);

}  // namespace vmlat
