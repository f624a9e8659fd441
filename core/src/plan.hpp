// The plan model (internal to the core): what a TOML plan says, validated.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/context.hpp"
#include "vmlat/json.hpp"
#include "vmlat/settings.hpp"

namespace vmlat {

class PluginRegistry;
struct RegressionSpec;  // gates/regression.hpp

struct Instance {
  std::string kind;    // "backend", "workload", "probe"
  std::string name;    // the table name: [probe.<name>]
  std::string plugin;  // the plugin it instantiates
  std::string where;   // workloads: placement ("host", "guest", "dom0")
  Location location;   // the table
  Location plugin_location;
  std::shared_ptr<const void> table;  // the TOML table (opaque outside plan.cpp)
};

struct Axis {
  std::string name;
  std::vector<std::string> values;
  Location location;
};

// What `vmlat validate` refuses before it could run away (docs/plan-format.md,
// "Limits"): each limit is checked before the work it bounds is done.
namespace plan_limits {
inline constexpr std::uintmax_t kFileBytes = 1 << 20;  // TOML++ needs ~40x the text in memory
inline constexpr std::size_t kKeyChars = 128;
inline constexpr std::size_t kKeyParts = 16;           // a.b.c: TOML++ nests a table per part
inline constexpr std::size_t kStringBytes = 64 * 1024;
inline constexpr std::size_t kAxes = 32;                // backend, workload, probe, period and the rest
inline constexpr std::uint64_t kCells = 10000;         // before matrix.exclude
inline constexpr std::size_t kCellIdChars = 200;       // cells/<id>/ is a directory (NAME_MAX 255)
inline constexpr std::size_t kInstances = 1000;        // per kind (backend, workload, probe)
inline constexpr std::size_t kExcludes = 1000;
inline constexpr std::size_t kGates = 1000;
inline constexpr std::uint64_t kGateChecks = 100000;   // cells (before exclude) x gates
inline constexpr int kCpu = 4095;                      // highest CPU number a plan may name
inline constexpr std::size_t kExpects = 1000;
inline constexpr std::uint64_t kExpectPairs = 100000;  // cell pairs over all [[expect]] tables
inline constexpr std::size_t kFigures = 100;           // [[report.figure]]: each is two SVG plots in the page
}  // namespace plan_limits

// { axis = "value" | ["v", ...] }: axis -> accepted values (sorted, unique).
using Selector = std::vector<std::pair<std::string, std::vector<std::string>>>;
// True when every axis of the selector has one of its values in `axes`.
bool selector_matches(const Selector& selector, const std::vector<std::pair<std::string, std::string>>& axes);

// {axis: [values]} and back (run.json keeps a plan's claims and figures so
// that `vmlat report` reads them without the plan); nullopt when `j` is not
// a non-empty object of arrays of strings.
json selector_json(const Selector& selector);
std::optional<Selector> selector_from_json(const json& j);

// A finding as a check (docs/plan-format.md, [[expect]]): the statistic of
// the cells `smaller` selects is below that of the cells `larger` selects,
// cell by cell for each combination of the axes neither selector names.
// Judged after the run and by `vmlat report` (gates/expect.hpp).
struct ExpectSpec {
  std::string name;
  std::string description;
  std::string stat;       // "max", "mean", "p50", "p99.9", "rl1h", ...
  double quantile = 0;    // pNN: NN/100
  double horizon_s = 0;   // rl<duration>
  Selector smaller, larger;
  double confidence = 0.99;
  bool gate = false;      // a violated claim fails the run (exit 1)
  Location location, smaller_location, larger_location;
};

struct GateSpec {
  std::string name;
  std::string stat;        // "max", "mean", "min", "p99", "p99.9", ..., "rl1h", "rl24h"
  double quantile = 0;     // for pNN: NN/100
  double horizon_s = 0;    // for rl<duration>: the return level's horizon (rl1h: 3600)
  // How sure a statement of the gate must be: a regression gate's verdicts
  // against its history, and the run length a max or rl bound needs
  // (docs/statistics.md, "How long to run").
  double confidence = 0.99;
  // The plan's cells this gate matches (set by load_plan): the family a
  // regression gate's per-cell verdicts are corrected over.
  std::size_t cells_matched = 0;
  std::chrono::nanoseconds bound{0};
  std::string series;      // a named series of the cell ("irq"); empty: the default series
  Location series_location;
  Selector match;
  // Set for `regression = { baseline = ..., tolerance = ... }`: the bound is
  // then the baseline's statistic plus the tolerance (gates/regression.hpp).
  std::shared_ptr<const RegressionSpec> regression;
  // Measure a failing cell again up to this many times (the plan's retest
  // when the gate does not say): a failure that does not reproduce is flaky.
  std::optional<int> retest;
  // Set for `lint = "error"` / `"warning"`: the gate reads the RT lint a
  // backend recorded (facts.backend.lint, the libvirt backend) and fails on
  // findings of that severity or worse; no statistic, no bound.
  std::string lint;
  Location location;
  bool matches(const CellSpec& cell) const;
};

// [[report.figure]]: an overlay figure of the HTML report the plan chooses
// (docs/plan-format.md, [report]): the CCDF and/or histogram of the cells
// `cells` selects, in one plot.
struct FigureSpec {
  std::string draw = "both";  // "both", "ccdf", "histogram"
  std::string title;
  Selector cells;
  Location location;
};
struct ReportSpec {
  bool declared = false;        // the plan has [report]
  bool default_figures = true;  // the report's own figures (seed columns, sweeps) as well
  std::vector<FigureSpec> figures;
};

// run.json's "report": {default_figures, figures: [{kind, title, cells}]}, and back (nullopt: not one).
json report_spec_json(const ReportSpec& r);
std::optional<ReportSpec> report_spec_from_json(const json& j);

struct Timeouts {
  std::chrono::nanoseconds prepare = std::chrono::minutes(15);
  std::chrono::nanoseconds boot = std::chrono::minutes(5);
  std::chrono::nanoseconds start = std::chrono::seconds(60);
  std::chrono::nanoseconds measure_margin = std::chrono::seconds(60);
  std::chrono::nanoseconds stop = std::chrono::seconds(60);
};

// A machine cells run on (docs/plan-format.md, [hosts]). Without an
// address it is this machine, and its cells run inside this vmlat process;
// with one, cells run there over SSH (vmlat is installed there by the
// vmlat_common Ansible role).
// A path of this machine that a plan or an inventory names (identity_file,
// known_hosts), relative to the working directory as documented: made
// absolute, since ansible-playbook and ssh may run elsewhere. "~/..." is kept
// for ssh and Ansible to expand; empty stays empty.
std::string path_for_children(const std::string& path);

struct HostSpec {
  std::string name = "local";
  std::string address;        // empty: this machine
  int port = 0;               // 0: ssh's default
  std::string user;           // empty: ssh's default
  std::string identity_file;  // a path handed to ssh -i; the key itself never enters vmlat
  std::string known_hosts;    // a path; empty: ssh's own
  std::vector<std::string> tags;
  json vars = json::object();  // Ansible host variables (vmlat_common_prefix, ...)
  bool provision = true;       // run ansible/provision.yml before its first cell
  Location location;
  bool local() const { return address.empty(); }
};

// [export.prometheus]: defaults for `vmlat run --push/--textfile` (the
// command line overrides them). See docs/metrics.md.
struct PrometheusExport {
  std::string push;                                      // Pushgateway URL; empty: no push
  std::chrono::nanoseconds push_timeout = std::chrono::seconds(30);
  std::string textfile;                                  // directory; empty: none
  std::string job = "vmlat";
};

struct Plan {
  std::filesystem::path path;
  std::string text;
  std::string sha256;
  std::string name;
  std::string description;
  std::chrono::nanoseconds duration = std::chrono::seconds(10);
  std::chrono::nanoseconds period = std::chrono::milliseconds(1);
  std::vector<int> cpus;  // empty = all
  std::string results_dir = "results";
  int retest = 0;              // [plan] retest: see GateSpec::retest
  bool flaky_fails = false;    // [plan] flaky = "fail": a flaky gate fails the run
  // [plan] max_parallel_hosts: hosts measured (and provisioned, and
  // connected) at once; the threads and ssh masters of the controller.
  std::size_t max_parallel_hosts = 16;
  Timeouts timeouts;
  std::vector<HostSpec> hosts;  // at least one; the implicit "local" host when there is no [hosts]
  bool hosts_declared = false;  // the plan has a [hosts] table: placement rules apply
  std::vector<Axis> axes;  // backend, workload, probe, period first, then free axes
  std::vector<Selector> excludes;  // a cell matching every entry of one selector is left out
  // [matrix] scope: axis -> the backend instances it applies to (absent: all).
  // A cell whose backend is out of an axis's scope does not have that axis:
  // neither its value nor its id part, and the cells that differed only in
  // it are one cell. guest_kernel defaults to every backend but the host
  // plugin (bare metal has no guest). See docs/plan-format.md, "Scopes".
  std::map<std::string, std::vector<std::string>> axis_scopes;
  std::map<std::string, Instance> backends, workloads, probes;
  std::vector<GateSpec> gates;
  std::vector<ExpectSpec> expects;
  ReportSpec report;
  PrometheusExport prometheus;
  std::shared_ptr<const void> document;  // keeps the TOML tree alive
};

struct Cell {
  int index = 0;  // 1-based position in the run
  CellSpec spec;
  std::string backend, workload, probe;  // instance names ("none" = no workload)
};

// Parses and validates. Every problem goes to `diags` as file:line:col; the
// returned plan is only usable when diags is empty. With a registry, each
// plugin instance is configured once to validate its own table.
Plan load_plan(const std::filesystem::path& path, Diagnostics& diags, PluginRegistry* registry);

// The cartesian product of the axes, before matrix.exclude; saturates at
// UINT64_MAX.
std::uint64_t matrix_cells(const Plan& plan);

// The cells, minus matrix.exclude. Safe on any Plan, also one with errors: no
// cells when an axis is empty, one of backend/workload/probe is missing or the
// product exceeds plan_limits::kCells.
std::vector<Cell> expand(const Plan& plan);

// "p99.9" -> 0.999: 'p', then digits with at most one '.', 0 < p < 100.
// Returns nullopt and sets *why otherwise.
std::optional<double> parse_percentile(std::string_view stat, std::string* why = nullptr);

// The Settings of an instance, reporting into `diags`.
Settings instance_settings(const Instance& instance, Diagnostics& diags);

}  // namespace vmlat
