// Running a plan: cells one after another on a host, results, gates, exit code.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

class PluginRegistry;

namespace exit_code {
inline constexpr int pass = 0;
inline constexpr int gate_failed = 1;
inline constexpr int usage = 2;
inline constexpr int infra = 3;
inline constexpr int interrupted = 130;
}  // namespace exit_code

struct RunOptions {
  std::optional<std::filesystem::path> results_root;  // overrides [plan] results
  std::filesystem::path junit_path;                    // empty: no JUnit
  bool progress = false;                               // live progress on stderr
  std::vector<std::pair<std::string, std::string>> only;  // axis=value filters
  std::optional<std::chrono::nanoseconds> duration;    // overrides [plan] duration
  std::vector<std::string> command_line;
  // Resume this run directory: cells measured (or skipped) there are kept,
  // the others run again. The plan must be byte-identical (same sha256);
  // the run's own --only/--duration are reapplied.
  std::optional<std::filesystem::path> resume_dir;
  // The host-wide measurement lock's directory (default $VMLAT_LOCK_DIR or
  // /run/vmlat) and whether to give up at once when another run holds it.
  std::optional<std::filesystem::path> lock_dir;
  bool no_wait = false;
  // Exporter hooks. on_cell_done runs after each cell's result.json is
  // written (e.g. push that cell's metrics); on_run_done after run.json is
  // final, and may return a different exit code (an export failure). Neither
  // may throw; results on disk are already complete when they run.
  std::function<void(const json& run, const json& cell_result, const std::filesystem::path& run_dir)> on_cell_done;
  std::function<int(int exit_code, const json& run, const std::vector<json>& cell_results,
                    const std::filesystem::path& run_dir)>
      on_run_done;
};

enum class Verdict { pass, fail, error, skipped };
const char* verdict_name(Verdict v);

struct GateResult {
  std::string gate;
  std::string stat;
  std::chrono::nanoseconds bound{0};
  std::chrono::nanoseconds value{0};
  Verdict verdict = Verdict::error;
  std::string message;
};

// Whether a probe's data fits its cell (docs/results-format.md,
// "Plausibility"). Per CPU, samples + missed periods may not exceed
// duration / period by more than max_fraction (+ count_slack), and samples
// plus the periods skipped after late wake-ups must reach min_fraction of
// it; the measure phase must have lasted min_time_fraction of the duration
// (minus time_slack_s). Returns why not, or "" when it fits.
namespace plausibility {
inline constexpr double max_fraction = 1.02;
inline constexpr double count_slack = 2;
inline constexpr double min_fraction = 0.5;
inline constexpr double min_time_fraction = 0.95;
inline constexpr double time_slack_s = 0.1;
}  // namespace plausibility
std::string implausible(const CellSpec& cell, const std::map<int, Histogram>& per_cpu,
                        std::optional<std::chrono::steady_clock::duration> measured_for);

// The statistic a gate bounds, read from a merged histogram.
std::chrono::nanoseconds gate_statistic(const GateSpec& gate, const Histogram& merged);
std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, const std::string& cell_status,
                                       const std::string& cell_error, const Histogram* merged);

// Runs the plan; returns the exit code. Writes the summary to `out` and
// progress/errors to `err`.
int run_plan(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::ostream& out, std::ostream& err);

// JUnit XML of a finished (or partial) run directory's cells.
std::string junit_xml(const std::string& plan_name, const json& run, const std::vector<json>& cell_results);

}  // namespace vmlat
