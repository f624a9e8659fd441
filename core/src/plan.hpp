// The plan model (internal to the core): what a TOML plan says, validated.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmlat/context.hpp"
#include "vmlat/json.hpp"
#include "vmlat/settings.hpp"

namespace vmlat {

class PluginRegistry;
struct RegressionSpec;  // regression.hpp

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

struct GateSpec {
  std::string name;
  std::string stat;        // "max", "mean", "min", "p99", "p99.9", ...
  double quantile = 0;     // for pNN: NN/100
  std::chrono::nanoseconds bound{0};
  std::string series;      // a named series of the cell ("irq"); empty: the default series
  Location series_location;
  std::vector<std::pair<std::string, std::vector<std::string>>> match;  // axis -> accepted values
  // Set for `regression = { baseline = ..., tolerance = ... }`: the bound is
  // then the baseline's statistic plus the tolerance (regression.hpp).
  std::shared_ptr<const RegressionSpec> regression;
  // Measure a failing cell again up to this many times (the plan's retest
  // when the gate does not say): a failure that does not reproduce is flaky.
  std::optional<int> retest;
  Location location;
  bool matches(const CellSpec& cell) const;
};

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
  Timeouts timeouts;
  std::vector<HostSpec> hosts;  // at least one; the implicit "local" host when there is no [hosts]
  bool hosts_declared = false;  // the plan has a [hosts] table: placement rules apply
  std::vector<Axis> axes;  // backend, workload, probe, period first, then free axes
  std::vector<std::vector<std::pair<std::string, std::string>>> excludes;
  std::map<std::string, Instance> backends, workloads, probes;
  std::vector<GateSpec> gates;
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

std::vector<Cell> expand(const Plan& plan);

// The Settings of an instance, reporting into `diags`.
Settings instance_settings(const Instance& instance, Diagnostics& diags);

}  // namespace vmlat
