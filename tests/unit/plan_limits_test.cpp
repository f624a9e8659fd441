// The pieces of plan loading that bound its work (docs/plan-format.md,
// "Limits"), on hand-made Plans: what tests/plans cannot reach through a file.
#include <gtest/gtest.h>

#include <cstdint>

#include "plan.hpp"

using namespace vmlat;

namespace {

Plan plan_with(std::vector<Axis> axes) {
  Plan p;
  p.name = "p";
  p.hosts.push_back(HostSpec{});
  p.axes = std::move(axes);
  return p;
}

Axis axis(std::string name, int values) {
  Axis a;
  a.name = std::move(name);
  for (int i = 0; i < values; ++i) a.values.push_back("v" + std::to_string(i));
  return a;
}

Axis axis(std::string name, std::vector<std::string> values) { return Axis{std::move(name), std::move(values), {}}; }

TEST(PlanLimits, MatrixCellsSaturates) {
  EXPECT_EQ(matrix_cells(plan_with({})), 0u);
  EXPECT_EQ(matrix_cells(plan_with({axis("a", 3), axis("b", 0)})), 0u);
  EXPECT_EQ(matrix_cells(plan_with({axis("a", 10), axis("b", 10), axis("c", 10)})), 1000u);
  std::vector<Axis> many;
  for (int i = 0; i < 40; ++i) many.push_back(axis("a" + std::to_string(i), 10));  // 10^40
  EXPECT_EQ(matrix_cells(plan_with(many)), UINT64_MAX);
  many.push_back(axis("empty", 0));
  EXPECT_EQ(matrix_cells(plan_with(many)), 0u) << "an empty axis means no cells, however large the rest";
}

// expand() is safe on any Plan: the SIGSEGV of `vmlat validate` on an empty
// file was expand() reading a backend axis that was not there.
TEST(PlanLimits, ExpandIsSafeOnIncompletePlans) {
  const Axis backend = axis("backend", {"host"}), workload = axis("workload", {"none"}), probe = axis("probe", {"c"});
  EXPECT_TRUE(expand(plan_with({})).empty());
  EXPECT_TRUE(expand(plan_with({backend, workload})).empty());
  EXPECT_TRUE(expand(plan_with({backend, probe})).empty());
  EXPECT_TRUE(expand(plan_with({workload, probe, axis("x", 3)})).empty());
  EXPECT_TRUE(expand(plan_with({backend, workload, probe, axis("x", 0)})).empty());
  EXPECT_EQ(expand(plan_with({backend, workload, probe, axis("x", 3)})).size(), 3u);
}

TEST(PlanLimits, ExpandRefusesMoreThanTheCellLimit) {
  const Axis backend = axis("backend", {"host"}), workload = axis("workload", {"none"}), probe = axis("probe", {"c"});
  EXPECT_EQ(expand(plan_with({backend, workload, probe, axis("x", 100), axis("y", 100)})).size(), plan_limits::kCells);
  EXPECT_TRUE(expand(plan_with({backend, workload, probe, axis("x", 100), axis("y", 101)})).empty());
}

TEST(PlanLimits, ExcludesAreSelectorsNotCombinations) {
  Plan p = plan_with({axis("backend", {"host"}), axis("workload", {"none", "stress"}), axis("probe", {"c"}), axis("period", {"1ms", "2ms", "3ms"})});
  p.excludes.push_back({{"workload", {"stress"}}, {"period", {"2ms", "3ms"}}});
  p.excludes.push_back({{"nosuchaxis", {"x"}}});  // excludes nothing
  const auto cells = expand(p);
  ASSERT_EQ(cells.size(), 4u);
  EXPECT_EQ(cells[3].spec.id, "host-stress-c-1ms");
  EXPECT_EQ(cells[3].index, 4);
  EXPECT_EQ(cells[3].spec.period, std::chrono::milliseconds(1));
  p.excludes.push_back({});  // an empty selector matches every cell
  EXPECT_TRUE(expand(p).empty());
}

TEST(PlanLimits, PercentilesAreDigitsWithOnePoint) {
  EXPECT_DOUBLE_EQ(*parse_percentile("p99"), 0.99);
  EXPECT_DOUBLE_EQ(*parse_percentile("p99.9"), 0.999);
  EXPECT_DOUBLE_EQ(*parse_percentile("p0.001"), 0.00001);
  EXPECT_DOUBLE_EQ(*parse_percentile("p050"), 0.5);
  std::string why;
  for (const char* bad : {"p", "99", "P99", "p 99", "p99 ", "p+99", "p-1", "p1e1", "p0x10", "pinf", "pnan", "p.5", "p5.",
                          "p9.9.9", "p0", "p100", "p100.0", "p99.99999999999999999"}) {
    why.clear();
    EXPECT_FALSE(parse_percentile(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(PlanLimits, DiagnosticsStopAfterAHundred) {
  Diagnostics d;
  for (int i = 0; i < 1000; ++i) d.error(Location{"p.toml", i + 1, 1}, "error " + std::to_string(i));
  ASSERT_EQ(d.all().size(), 101u);
  EXPECT_EQ(d.all()[99].message, "error 99");
  EXPECT_NE(d.all()[100].message.find("too many errors"), std::string::npos) << d.all()[100].message;
}

TEST(PlanLimits, DidYouMeanOnlyWhereCheap) {
  EXPECT_EQ(did_you_mean("perido", {"period", "duration"}), "period");
  EXPECT_EQ(did_you_mean(std::string(100, 'a'), {std::string(99, 'a')}), "") << "no suggestion for a 100-character word";
  std::vector<std::string> many(1001, "zzzzzz");
  many.push_back("period");
  EXPECT_EQ(did_you_mean("perido", many), "") << "no suggestion among more than 1,000 candidates";
}

}  // namespace
