// Data-driven plan cases: tests/plans/<case>/plan.toml (or a `generate` spec,
// see tests/support/plan_cases.hpp) next to expected.err (every diagnostic,
// exactly, as file:line:col: message with the path shown as plan.toml and
// the build directory as <build>) or expected.cells (the expanded cells and
// their gates). Adding a case is adding files. VMLAT_UPDATE_EXPECTED=1
// rewrites the expected files from the current output (review the diff!).
// tests/e2e/plan_cases_cli_test.cpp runs the error cases through the CLI.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gates/expect.hpp"
#include "loader.hpp"
#include "plan.hpp"
#include "plan_cases.hpp"

using namespace vmlat;
using vmlat::testing::replace_all;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

PluginRegistry& registry() {
  static PluginRegistry r({fs::path(VMLAT_BINARY_DIR) / "plugins"});
  return r;
}

class PlanCase : public ::testing::TestWithParam<std::string> {
 protected:
  void TearDown() override { fs::remove_all(scratch_); }
  fs::path scratch_ = fs::temp_directory_path() / ("vmlat-plan-cases-" + std::to_string(getpid()));
};

TEST_P(PlanCase, MatchesExpectedOutput) {
  auto dir = vmlat::testing::kPlanCases / GetParam();
  auto plan_path = vmlat::testing::plan_case_path(GetParam(), scratch_);
  Diagnostics diags;
  Plan plan = load_plan(plan_path, diags, &registry());
  bool update = std::getenv("VMLAT_UPDATE_EXPECTED") != nullptr;

  if (fs::exists(dir / "expected.err") || (update && !diags.empty())) {
    std::string actual = replace_all(replace_all(diags.str(), plan_path.string(), "plan.toml"), VMLAT_BINARY_DIR, "<build>");
    if (update) std::ofstream(dir / "expected.err") << actual;
    EXPECT_FALSE(diags.empty()) << "expected errors, the plan validated";
    EXPECT_EQ(actual, read(dir / "expected.err"));
    return;
  }
  ASSERT_TRUE(diags.empty()) << diags.str();
  std::ostringstream cells;
  for (const auto& c : expand(plan)) {
    cells << c.index << " " << c.spec.id;
    for (const auto& g : plan.gates)
      if (g.matches(c.spec)) cells << " gate:" << g.name;
    cells << "\n";
  }
  // The pairs each [[expect]] claim compares.
  const auto expanded = expand(plan);
  std::vector<const ExpectAxes*> axes;
  for (const auto& c : expanded) axes.push_back(&c.spec.axes);
  for (const auto& e : plan.expects)
    for (const auto& [i, j] : expect_pairs(e, axes, plan_limits::kExpectPairs))
      cells << "expect:" << e.name << (e.gate ? " (gate)" : "") << ": " << expanded[i].spec.id << " < " << expanded[j].spec.id << "\n";
  // The cells each [[report.figure]] overlays.
  for (const auto& f : plan.report.figures) {
    cells << "figure:" << f.title << " (" << f.draw << "):";
    for (const auto& c : expanded)
      if (selector_matches(f.cells, c.spec.axes)) cells << " " << c.spec.id;
    cells << "\n";
  }
  if (plan.report.declared && !plan.report.default_figures) cells << "no default figures\n";
  if (update) std::ofstream(dir / "expected.cells") << cells.str();
  ASSERT_TRUE(fs::exists(dir / "expected.cells")) << "a case needs expected.err or expected.cells";
  EXPECT_EQ(cells.str(), read(dir / "expected.cells"));
}

INSTANTIATE_TEST_SUITE_P(Plans, PlanCase, ::testing::ValuesIn(vmlat::testing::plan_case_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
