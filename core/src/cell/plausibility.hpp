// Whether a probe's data fits its cell (docs/results-format.md,
// "Plausibility"), and whether its spike list belongs to its histograms.
// Data that does not fit is not a measurement: the cell is an
// infrastructure error and the data stays in result.json for diagnosis.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vmlat/context.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/plugin.hpp"

namespace vmlat {

// Per CPU, samples + missed periods may not exceed duration / period by more
// than max_fraction (+ count_slack), and samples plus the periods skipped
// after late wake-ups must reach min_fraction of it; the measure phase must
// have lasted min_time_fraction of the duration (minus time_slack_s).
namespace plausibility {
inline constexpr double max_fraction = 1.02;
inline constexpr double count_slack = 2;
inline constexpr double min_fraction = 0.5;
inline constexpr double min_time_fraction = 0.95;
inline constexpr double time_slack_s = 0.1;
}  // namespace plausibility
// Why `per_cpu` does not fit `cell`, or "" when it does.
std::string implausible(const CellSpec& cell, const std::map<int, Histogram>& per_cpu,
                        std::optional<std::chrono::steady_clock::duration> measured_for);

// Sorts a probe's spikes worst first and checks that each CPU's worst is
// that CPU's histogram maximum exactly. Returns why not, or "".
std::string sort_and_check_spikes(std::vector<Spike>& spikes, const std::map<int, Histogram>& per_cpu);

}  // namespace vmlat
