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
#include "vmlat/plugin.hpp"
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
  // Hosts from the user's Ansible inventory instead of the plan's [hosts].
  std::optional<std::filesystem::path> inventory;
  bool no_provision = false;                      // skip ansible/provision.yml
  std::optional<std::filesystem::path> bundle;    // the vmlat bundle for provisioning (default: made from the build tree)
  // Exporter hooks. on_cell_done runs after each cell's result.json is
  // written (e.g. push that cell's metrics); on_run_done after run.json is
  // final, and may return a different exit code (an export failure). Neither
  // may throw; results on disk are already complete when they run.
  std::function<void(const json& run, const json& cell_result, const std::filesystem::path& run_dir)> on_cell_done;
  std::function<int(int exit_code, const json& run, const std::vector<json>& cell_results,
                    const std::filesystem::path& run_dir)>
      on_run_done;
};

// flaky: failed, then passed when the cell was measured again ([plan]
// retest); not a failure unless [plan] flaky = "fail".
enum class Verdict { pass, fail, error, skipped, flaky };
const char* verdict_name(Verdict v);

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

// Sorts a probe's spikes worst first and checks that each CPU's worst is
// that CPU's histogram maximum exactly. Returns why not, or "".
std::string sort_and_check_spikes(std::vector<Spike>& spikes, const std::map<int, Histogram>& per_cpu);

// The statistic a gate bounds, read from a merged histogram.
std::chrono::nanoseconds gate_statistic(const GateSpec& gate, const Histogram& merged);
// `merged` is the cell's default series; `named` (optional) its series by
// name, the default included: a gate with `series` reads that one, and is an
// `error` when the cell has no such series.
std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, const std::string& cell_status,
                                       const std::string& cell_error, const Histogram* merged,
                                       const std::map<std::string, Histogram>* named = nullptr);

// Runs the plan; returns the exit code. Writes the summary to `out` and
// progress/errors to `err`.
int run_plan(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::ostream& out, std::ostream& err);

// `vmlat run-cell`: what a controller runs on a remote host over ssh for one
// cell of a run (remote.hpp). Runs the cell with this machine's plugins,
// inside the host lock, into out_dir/cells/<id>/ (the layout of a local
// cell); phases go to `out` as "vmlat-event {json}" lines. With
// cancel_on_eof, EOF on stdin (the controller's Ctrl-C, or its death)
// interrupts the cell: it is torn down and keeps what it measured. Exits as
// a run of that one cell would (0, 1, 3, 130; 2 for a bad plan, an unknown
// cell or another vmlat version than expect_version).
struct CellRunOptions {
  std::string cell_id;
  int index = 1;
  std::string run_id;
  std::string host_name;
  std::filesystem::path out_dir;
  std::optional<std::chrono::nanoseconds> duration;
  std::optional<std::filesystem::path> lock_dir;
  std::string expect_version;  // "<version>/<abi>" of the controller; empty: any
  bool cancel_on_eof = false;
  // After the cell, write "vmlat-archive v1\n" and a tar of its directory
  // to stdout: the controller gets the cell back without another round trip.
  bool send_back = false;
  // Before the host lock, wait for a line "go" on stdin; EOF first: exit
  // 130 having done nothing (RemoteHost::prespawn).
  bool wait_go = false;
};
int run_single_cell(const Plan& plan, PluginRegistry& registry, const CellRunOptions& options, std::ostream& out,
                    std::ostream& err);

// `vmlat hosts PLAN`: every host with its address, reachability, tags and
// facts; `vmlat provision PLAN`: provision.yml on each remote host, nothing
// measured. Both accept the user's inventory instead of [hosts].
int list_hosts(const Plan& plan, const std::optional<std::filesystem::path>& inventory, bool as_json, std::ostream& out,
               std::ostream& err);
int provision_hosts(const Plan& plan, const RunOptions& options, std::ostream& out, std::ostream& err);

// JUnit XML of a finished (or partial) run directory's cells.
std::string junit_xml(const std::string& plan_name, const json& run, const std::vector<json>& cell_results);

}  // namespace vmlat
