// Claims between cells ([[expect]], docs/plan-format.md; the statistics in
// docs/statistics.md, "Claims"): which cells pair up, each side's statistic
// with an interval, and the verdict — holds, violated or inconclusive.
// The runner judges a run's claims after its cells (run.json "expects",
// JUnit); `vmlat report` judges them again on stored and merged runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plan.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

using ExpectAxes = std::vector<std::pair<std::string, std::string>>;

// "backend=kvm guest_kernel=nrt,rt": a selector for messages and default names.
std::string selector_text(const Selector& selector);

// The pairs (index of a cell `smaller` selects, index of one `larger`
// selects) whose axes agree on every axis neither selector names (a cell
// absent from an axis's scope agrees only with cells that lack it too); a
// cell is never its own partner. `*count` is the number of pairs; at most
// `limit` are returned.
std::vector<std::pair<std::size_t, std::size_t>> expect_pairs(const ExpectSpec& e, const std::vector<const ExpectAxes*>& cells,
                                                              std::uint64_t limit, std::uint64_t* count = nullptr);

// A measured cell as a claim reads it: its default series' merged histogram
// and how long it was measured.
struct ExpectCell {
  std::string id, run_id;
  ExpectAxes axes;
  Histogram histogram;
  double duration_s = 0;
};
// From a result.json (nullopt: not measured, or no histogram). `axes`: the
// cell's axes as the caller matches them (result.json's own when empty).
std::optional<ExpectCell> expect_cell(const json& result, const std::string& run_id = "", ExpectAxes axes = {});
// How long a cell measured: timings.phases.measure_s, else
// nominal_measured_seconds (samples x period over the CPUs); 0 unknown.
double measured_seconds(const json& result, std::uint64_t samples);
// timings.phases.measure_s of a result.json; 0 when absent.
double measure_phase_seconds(const json& result);

struct ExpectSide {
  std::string cell, run_id;
  double value_ns = 0, low_ns = 0, high_ns = 0;  // NaN: no estimate; high may be +inf
  std::string method;
};
// "kvm-rt (run a1): 80 µs [70 µs, 95 µs]": a side for messages ("unbounded", "?" where no limit is known).
std::string expect_side_text(const ExpectSide& s);
struct ExpectPair {
  ExpectSide smaller, larger;
  std::string verdict;  // "holds", "violated", "inconclusive"
};
struct ExpectResult {
  ExpectSpec spec;
  std::string verdict;  // "holds", "violated", "inconclusive"
  std::string reason;   // one sentence: why, and what would make it conclusive
  double pair_confidence = 0;  // each pair's intervals (Bonferroni over the run's pairs)
  std::size_t family = 0;      // the pairs of every claim judged together
  std::vector<ExpectPair> pairs;
  bool failed() const { return spec.gate && verdict == "violated"; }
};

// Every claim over the same cells: the pairs of all claims are one family,
// so that the chance of any wrong "holds" or "violated" in the run is at most
// 1 - confidence when the compared statistics are equal.
std::vector<ExpectResult> judge_expects(const std::vector<ExpectSpec>& specs, const std::vector<ExpectCell>& cells);

// run.json's and the report's "expects": [{name, description, stat, smaller,
// larger, confidence, gate, verdict, reason, pair_confidence, family, pairs:
// [{smaller: {cell, run_id, value_ns, low_ns, high_ns, method}, larger: ..., verdict}]}].
json expect_json(const ExpectResult& r);
// A claim as run.json stores it, for `vmlat report` to judge again; nullopt
// (with *why) when the entry is not one.
std::optional<ExpectSpec> expect_spec_from_json(const json& j, std::string* why = nullptr);

}  // namespace vmlat
