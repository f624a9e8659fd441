// Named series and spike lists in the core: gates reading a named series,
// and the check that a probe's spike list belongs to its histograms.
#include <gtest/gtest.h>

#include "cell/plausibility.hpp"
#include "gates/evaluate.hpp"

using namespace vmlat;
using namespace std::chrono_literals;

namespace {

Histogram with_max(std::chrono::nanoseconds max) {
  Histogram h;
  h.add(10us, 100);
  h.add(max);
  return h;
}

Spike spike(int cpu, std::chrono::nanoseconds latency, std::int64_t mono) {
  Spike s;
  s.cpu = cpu;
  s.latency = latency;
  s.monotonic_ns = mono;
  return s;
}

TEST(Spikes, SortedWorstFirstAndCheckedAgainstEachCpusMax) {
  std::map<int, Histogram> per_cpu{{0, with_max(500us)}, {1, with_max(900us)}};
  std::vector<Spike> spikes{spike(0, 200us, 3), spike(1, 900us, 2), spike(0, 500us, 1), spike(0, 200us, 0)};
  EXPECT_EQ(sort_and_check_spikes(spikes, per_cpu), "");
  ASSERT_EQ(spikes.size(), 4u);
  EXPECT_EQ(spikes[0].latency, 900us);
  EXPECT_EQ(spikes[1].latency, 500us);
  EXPECT_EQ(spikes[2].monotonic_ns, 0);  // equal latencies in time order
  EXPECT_EQ(spikes[3].monotonic_ns, 3);

  std::vector<Spike> short_of_max{spike(0, 499us, 1)};
  EXPECT_NE(sort_and_check_spikes(short_of_max, per_cpu).find("is not the histogram's maximum"), std::string::npos);
  std::vector<Spike> elsewhere{spike(7, 1ms, 1)};
  EXPECT_NE(sort_and_check_spikes(elsewhere, per_cpu).find("which it did not measure"), std::string::npos);
  std::vector<Spike> none;
  EXPECT_EQ(sort_and_check_spikes(none, per_cpu), "");
}

TEST(SeriesGates, AGateReadsItsSeriesOrFailsToEvaluate) {
  Plan plan;
  GateSpec by_default, irq, missing;
  by_default.name = "default";
  by_default.stat = "max";
  by_default.bound = 1ms;
  irq = by_default;
  irq.name = "irq";
  irq.series = "irq";
  missing = by_default;
  missing.name = "missing";
  missing.series = "softirq";
  plan.gates = {by_default, irq, missing};
  CellSpec cell;
  const Histogram thread = with_max(800us), irq_h = with_max(2ms);
  const std::map<std::string, Histogram> named{{"thread", thread}, {"irq", irq_h}};
  auto r = evaluate_gates(plan, cell, CellStatus::measured, "", &thread, &named);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].verdict, Verdict::pass);
  EXPECT_EQ(r[0].value, 800us);
  EXPECT_EQ(r[1].verdict, Verdict::fail);
  EXPECT_EQ(r[1].value, 2ms);
  EXPECT_EQ(r[1].series, "irq");
  EXPECT_EQ(r[2].verdict, Verdict::error);
  EXPECT_EQ(r[2].message, "the cell has no series 'softirq'");
  // Without named series (the monitor) a series gate cannot pass.
  EXPECT_EQ(evaluate_gates(plan, cell, CellStatus::measured, "", &thread)[1].verdict, Verdict::error);
}

}  // namespace

namespace {

// A lint gate reads facts.backend.lint: errors fail "error", warnings too
// fail "warning"; no lint recorded is an error, never a pass.
TEST(LintGate, ReadsTheBackendsFindings) {
  Plan plan;
  GateSpec errors, warnings;
  errors.name = "lint<error";
  errors.lint = "error";
  warnings.name = "lint<warning";
  warnings.lint = "warning";
  plan.gates = {errors, warnings};
  CellSpec cell;
  const Histogram h = with_max(800us);
  auto facts_with = [](std::vector<std::pair<std::string, std::string>> findings) {
    json f = json::array();
    for (const auto& [rule, severity] : findings) f.push_back(json{{"rule", rule}, {"severity", severity}});
    return json{{"backend", {{"lint", {{"findings", f}}}}}};
  };
  const json clean = facts_with({});
  auto r = evaluate_gates(plan, cell, CellStatus::measured, "", &h, nullptr, &clean);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].verdict, Verdict::pass);
  EXPECT_EQ(r[1].verdict, Verdict::pass);
  const json warned = facts_with({{"pmu", "warning"}});
  r = evaluate_gates(plan, cell, CellStatus::measured, "", &h, nullptr, &warned);
  EXPECT_EQ(r[0].verdict, Verdict::pass);
  EXPECT_EQ(r[1].verdict, Verdict::fail);
  EXPECT_NE(r[1].message.find("pmu"), std::string::npos) << r[1].message;
  const json failed = facts_with({{"pmu", "warning"}, {"locked", "error"}, {"vcpusched", "error"}});
  r = evaluate_gates(plan, cell, CellStatus::measured, "", &h, nullptr, &failed);
  EXPECT_EQ(r[0].verdict, Verdict::fail);
  EXPECT_EQ(r[0].extra["findings"], 2);
  EXPECT_NE(r[0].message.find("locked, vcpusched"), std::string::npos) << r[0].message;
  EXPECT_EQ(r[1].extra["findings"], 3);
  const json gates = gates_json(r);
  EXPECT_EQ(gates[0]["stat"], "lint");
  EXPECT_FALSE(gates[0].contains("value_ns"));
  // No lint recorded (another backend), or no facts at all.
  const json none = json{{"backend", json::object()}};
  EXPECT_EQ(evaluate_gates(plan, cell, CellStatus::measured, "", &h, nullptr, &none)[0].verdict, Verdict::error);
  EXPECT_EQ(evaluate_gates(plan, cell, CellStatus::measured, "", &h)[0].verdict, Verdict::error);
  EXPECT_EQ(evaluate_gates(plan, cell, CellStatus::infra_error, "boot failed", nullptr, nullptr, &clean)[0].verdict,
            Verdict::error);
}

}  // namespace
