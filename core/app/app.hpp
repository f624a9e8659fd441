// What a front end can ask of vmlat: one function per command and the
// options each takes. The command line (core/cli/main.cpp) parses arguments
// into these and calls them; it includes nothing else of the core but the
// public headers. The functions load plans and plugins, run, and return an
// exit code (vmlat/exit_codes.hpp); what they print goes to `out` and `err`.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vmlat/exit_codes.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

// `vmlat run PLAN`.
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
  // One CI job of a fan-out (docs/fan-out.md): only the cells of these
  // hosts' static share, each entry a host name or "tag=T" (every host
  // tagged T). Empty: every host, placed as usual.
  std::vector<std::string> host_share;
  // "This machine is NAME" (a CI runner on the lab host): NAME's share is
  // measured in this process, as a local host; NAME's address and ssh
  // settings and its provisioning are not used.
  std::string this_host;
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

// `vmlat run-cell`: what a controller runs on a remote host over ssh for one
// cell of a run (core/src/remote.hpp). Runs the cell with this machine's
// plugins, inside the host lock, into out_dir/cells/<id>/ (the layout of a
// local cell); phases go to `out` as "vmlat-event {json}" lines. With
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

// Bounds of a monitor session's record logs (docs/session-format.md).
struct SessionBounds {
  std::uint64_t max_bytes = 256ULL << 20;  // all record files together (current + rotated)
  std::uint64_t file_bytes = 16ULL << 20;  // the current file is rotated once this large
  std::chrono::seconds max_age = std::chrono::hours(24 * 30);  // rotated files older than this go (0: no limit)
};

// `vmlat monitor PLAN`.
struct MonitorOptions {
  std::string listen = "127.0.0.1:9464";             // host:port of /metrics
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::string cell_id;                               // empty: the plan's first cell
  std::optional<std::chrono::nanoseconds> stop_after;  // --for: stop by itself (tests)
  std::optional<std::filesystem::path> lock_dir;     // the host lock (as `vmlat run`)
  bool no_wait = false;
  // The session directory is created in here (default: the plan's results dir).
  std::optional<std::filesystem::path> results_root;
  SessionBounds bounds;
  // Back-off before bringing a failed backend or probe up again: doubles from
  // backoff_min up to backoff_max, back to backoff_min after a window.
  std::chrono::milliseconds backoff_min = std::chrono::seconds(1);
  std::chrono::milliseconds backoff_max = std::chrono::seconds(60);
};

// Where `vmlat run` and `vmlat push` deliver metrics (docs/metrics.md).
struct MetricsExport {
  std::string push_url;                                // Pushgateway; empty: no push
  std::optional<std::chrono::milliseconds> push_timeout;  // budget of one push, retries included
  std::optional<std::filesystem::path> textfile_dir;   // node_exporter textfile directory
};

namespace report {
struct ReportCommand {
  std::string run_dir;         // a run directory, or a results root (its "latest")
  std::string format = "html"; // html, markdown, json
  std::string output;          // "": RUN_DIR/report.html for html, stdout otherwise; "-": stdout
  std::string baseline;        // optional run directory to compare with
  std::vector<std::string> more_runs;  // further run directories merged with run_dir into one report
};
struct CompareCommand {
  // Run directories, or results directories (every complete run of NEW's
  // plan there that started no later than NEW, NEW itself left out).
  std::vector<std::string> bases;
  std::string now;
  std::vector<std::string> tolerances;  // "10%", "20us", "max=20us", "p99=5%"
  std::string format = "text";          // text, markdown, json
  std::string output;                   // "" or "-": stdout
  std::size_t last = 0;                 // --last N: the newest N runs of the baseline; 0: all
  double confidence = 0.99;             // --confidence
};
struct HistoryCommand {
  std::string results_dir;     // a results directory: its complete runs
  std::string plan;            // --plan: whose runs ("": the newest run's plan)
  std::string format = "text"; // text, markdown, json
  std::string output;          // "" or "-": stdout
  std::size_t last = 0;        // --last N: the newest N runs only; 0: all
  double confidence = 0.99;    // --confidence
};
struct GateCommand {
  std::vector<std::string> runs;  // run directories (or results roots: their "latest") of one plan
  std::string junit;              // "": none; else a JUnit XML file (one testcase per cell x gate, missing cells as errors)
  std::string markdown;           // "": none; else the verdict, the failing and missing cells, then the merged report's Markdown
};
struct ExportCommand {
  std::vector<std::string> runs;  // run directories, or results roots (their "latest"), merged as by `vmlat report`
  std::string format;             // kcidb, lava, lava-signal, rt-tests
  std::string output;             // "" or "-": stdout; rt-tests: a directory (required)
  std::string kcidb_origin = "vmlat";
  std::string kcidb_checkout, kcidb_build, kcidb_commit;
  std::string artifacts_url;      // base URL of the published run directories; "": file:// URLs
};
}  // namespace report

namespace app {

using Dirs = std::vector<std::filesystem::path>;  // --plugin-dir entries

// `vmlat plugins`: every plugin found, with kind, version, ABI and file.
int list_plugins(const Dirs& plugin_dirs, std::ostream& out);
// `vmlat validate PLAN`: every error as file:line:col (0 valid, 2 not).
int validate(const std::string& plan, const Dirs& plugin_dirs, std::ostream& out, std::ostream& err);
// `vmlat plan PLAN`: the expanded cells and their gates (text or JSON).
int show_plan(const std::string& plan, const Dirs& plugin_dirs, bool as_json, std::ostream& out, std::ostream& err);
// `vmlat run PLAN`: metrics from the plan's [export.prometheus] unless
// `metrics` overrides them.
int run(const std::string& plan, const Dirs& plugin_dirs, RunOptions options, MetricsExport metrics, std::ostream& out,
        std::ostream& err);
// `vmlat run-cell PLAN --cell ID --out DIR`.
int run_cell(const std::string& plan, const Dirs& plugin_dirs, const CellRunOptions& options, std::ostream& out,
             std::ostream& err);
// `vmlat hosts PLAN` and `vmlat provision PLAN`.
int hosts(const std::string& plan, const Dirs& plugin_dirs, const std::optional<std::filesystem::path>& inventory,
          bool as_json, std::ostream& out, std::ostream& err);
int provision(const std::string& plan, const Dirs& plugin_dirs, const RunOptions& options, std::ostream& out,
              std::ostream& err);
// `vmlat monitor PLAN`.
int monitor(const std::string& plan, const Dirs& plugin_dirs, const MonitorOptions& options, std::ostream& out,
            std::ostream& err);
// `vmlat push RUN_DIR` and `vmlat metrics RUN_DIR`.
int push(const std::string& run_dir, const MetricsExport& metrics, std::ostream& out, std::ostream& err);
int metrics(const std::string& run_dir, std::ostream& out, std::ostream& err);
// `vmlat report RUN_DIR` and `vmlat compare BASE NEW`.
int report(const report::ReportCommand& command, std::ostream& out, std::ostream& err);
int compare(const report::CompareCommand& command, std::ostream& out, std::ostream& err);
// `vmlat gate RUN...`: the merge-and-gate of a fan-out (docs/fan-out.md).
int gate(const report::GateCommand& command, std::ostream& out, std::ostream& err);
// `vmlat export --format F RUN...`: docs/export.md.
int export_run(const report::ExportCommand& command, std::ostream& out, std::ostream& err);
// `vmlat history RESULTS_DIR`: docs/report.md;// --format prometheus and --push: the change-point metrics (docs/metrics.md).
int history(const report::HistoryCommand& command, const MetricsExport& metrics, std::ostream& out, std::ostream& err);
// `vmlat lab xen ARGS...` (xen-lab) and `vmlat lint-domain ARGS...`
// (vmlat-lint-domain): execs libexec's `name` with ARGS (returns only if it
// cannot be started).
int exec_libexec(const std::string& name, const std::vector<std::string>& args, std::ostream& err);

// Checks of option values the command line makes before calling: an error
// message, empty when fine.
std::string check_push_url(const std::string& url);
// "256MiB", "16M", "4096" (bytes), "1GiB": a size in bytes, or nullopt with `why`.
std::optional<std::uint64_t> parse_size_bytes(const std::string& text, std::string* why);

// Flushes stdout/stderr and ends the process with `code` (with _exit() while
// a metrics push thread is still blocked, so that no static destructor races it).
[[noreturn]] void finish_process(int code);

}  // namespace app
}  // namespace vmlat
