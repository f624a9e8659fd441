// The vmlat command line: the commands as a table (name, what it takes, one
// line of help, its options, its handler), arguments parsed into the
// requests of the application header (core/app/app.hpp), exit codes mapped
// for `git bisect run` with --bisect. Adding a command is adding a row.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "app.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/units.hpp"
#include "vmlat/version.hpp"

using namespace vmlat;

namespace {

// Each command's --help, by name.
const std::map<std::string, std::string> kHelp = {
    {"run", R"(usage: vmlat run PLAN [options]

Runs the plan's cells one after another on this machine and writes
results/<run-id>/ (run.json, cells/<cell>/result.json, raw probe output, logs).
Prints a summary table; exits 0 if every gate passed, 1 if a gate failed,
3 if a cell could not be measured (the other cells are still measured),
2 for a bad plan, 130 if interrupted (what was measured is kept), and 4 if
everything passed but the metrics export (--push, --textfile) failed: the
results on disk are complete; 'vmlat push' delivers them later. An export
failure never changes the codes 1, 3 and 130.

options:
  --results DIR       results root (default: [plan] results, "results")
  --junit FILE        also write JUnit XML: one testcase per cell x gate
  --only AXIS=VALUE   run only the cells with that axis value (repeatable: values
                      of one axis are alternatives, different axes all hold)
  --duration D        override the measuring time of every cell (e.g. 5s)
  --progress          live progress on stderr (default when stderr is a terminal)
  --quiet             no progress
  --plugin-dir DIR    search DIR for plugins first (repeatable)
  --push URL          push each cell's metrics to the Prometheus Pushgateway at
                      URL (e.g. http://127.0.0.1:9091) when the cell ends, and
                      every cell again at the end of the run; grouping key
                      job="vmlat", plan, host, cell (docs/metrics.md)
  --push-timeout D    time budget of one push, retries with backoff included
                      (default 30s); then the failure is reported (exit code 4)
  --textfile DIR      write the run's metrics to DIR/vmlat_<plan>_<host>.prom for
                      node_exporter's textfile collector (atomically)
  --resume RUN_DIR    continue an interrupted, failed or abandoned run in
                      RUN_DIR: cells measured there are kept, the others run
                      again (their earlier attempt moves to RUN_DIR/attempts/);
                      the plan must be unchanged; refused (exit 2) while
                      another vmlat is still running that run
  --no-wait           if another vmlat is measuring on this host, exit 3 at
                      once instead of waiting for it (one measurement per host
                      at a time: the host lock, /run/vmlat/measure.lock)
  --lock-dir DIR      directory of the host lock (default $VMLAT_LOCK_DIR,
                      else /run/vmlat)
  --inventory FILE    take the hosts from this Ansible inventory (INI, YAML,
                      a script: whatever ansible-inventory reads) instead of
                      the plan's [hosts]: its hosts are vmlat hosts, its groups
                      their tags (docs/plan-format.md, "Hosts")
  --no-provision      do not run ansible/provision.yml on the remote hosts
                      before their first cell (they are provisioned already)
  --bundle FILE       the vmlat bundle provisioning installs on the hosts
                      (default: made from this build tree with
                      ansible/make-bundle)
  --host NAME         measure only NAME's share of the plan: one CI job of a
                      fan-out (docs/fan-out.md). The share is static, the same
                      in every job: placement over all the plan's hosts (or
                      the inventory's) as if all answered, host_kernel checked
                      against NAME's facts afterwards. Repeatable; tag=TAG
                      takes every host tagged TAG. An unknown name or tag:
                      exit 2, the plan's hosts listed. A share without cells:
                      exit 0, no run directory. `vmlat gate RUN...` merges
                      and gates the jobs' runs
  --this-host NAME    this machine is the plan's host NAME (a CI runner on the
                      lab host): NAME's share measured in this process, as a
                      local host; its address and ssh settings and its
                      provisioning are not used
  --bisect            exit codes for `git bisect run` (docs/bisect.md): 0
                      good (also 4), 1 bad (a gate failed), 125 skip for
                      infrastructure errors and interrupted runs (a broken lab
                      never blames a commit), 255 (stops the bisection) for a
                      bad plan or command line

With [hosts] in the plan (or --inventory), cells are placed on hosts whose
tags and facts fit (docs/plan-format.md, "Placement"; a cell no host can take
is refused before anything runs, exit 3), the remote hosts are provisioned
once, by one ansible-playbook for all, and hosts run in parallel (up to
[plan] max_parallel_hosts at once), one cell at a time each; remote cells run
there over ssh and their directories come back into the run directory.
)"},
    {"hosts", R"(usage: vmlat hosts PLAN [--inventory FILE] [--json]

Lists the plan's hosts (or the inventory's) with their address, whether they
answer over ssh, their tags and their facts: kernel, preemption model
(PREEMPT_RT or not), CPUs, hypervisor (/dev/kvm, Xen dom0). Nothing is
changed on them. Exits 0 if every host answered, 3 if one did not, 2 for a
bad plan or inventory.
)"},
    {"provision", R"(usage: vmlat provision PLAN [--inventory FILE] [--bundle FILE] [--results DIR]

Runs ansible/provision.yml on every remote host of the plan (or inventory)
with one ansible-playbook (Ansible's forks: up to [plan] max_parallel_hosts
hosts at once), as `vmlat run` does before the first cell, and measures
nothing. What Ansible did on each host goes to DIR/<host>.log (default
results/provision/), its whole output to DIR/ansible-playbook.out. Exits 0
if every host was provisioned, 3 if not (the others still are).
)"},
    {"run-cell", R"(usage: vmlat run-cell PLAN --cell ID --out DIR [options]

Internal: what `vmlat run` starts on a remote host over ssh to measure one
cell of its run there. Runs the cell with this machine's plugins, inside the
host lock, into DIR/cells/ID/ (the layout of a local cell), printing its
phases as "vmlat-event {json}" lines. Exits as a run of that cell would.

options:
  --cell ID            the cell ('vmlat plan PLAN' lists them)
  --out DIR            the run directory on this host
  --index N            the cell's index in the controller's run
  --run-id ID          the controller's run id (recorded in result.json)
  --host-name NAME     the plan's name for this host
  --duration D         the controller's --duration
  --lock-dir DIR       the host lock's directory
  --expect-version V   refuse (exit 2) unless this vmlat is V ("version/abi")
  --cancel-on-eof      EOF on stdin interrupts the cell (the controller's Ctrl-C)
  --send-back          then write "vmlat-archive v1" and a tar of the cell
                       directory to stdout
  --wait-go            once the plan is loaded, wait for a line "go" on stdin
                       before taking the host lock (EOF first: exit 130 having
                       done nothing); the controller starts the next cell's
                       vmlat this way while the current one tears down
)"},
    {"push", R"(usage: vmlat push RUN_DIR --url URL [options]

Pushes the metrics of a stored run (results/<run-id>, or a results root: its
"latest" run) to a Prometheus Pushgateway, exactly as 'vmlat run --push' does
at the end of a run: one group per cell (job="vmlat", plan, host, cell),
replacing what the group held. Use it after a push failed. Exits 0 if every
cell was delivered, 4 if not, 2 for a bad directory or usage.

options:
  --url URL           the Pushgateway, e.g. http://127.0.0.1:9091
  --push-timeout D    time budget of one push, retries included (default 30s)
  --textfile DIR      also write DIR/vmlat_<plan>_<host>.prom
)"},
    {"metrics", R"(usage: vmlat metrics RUN_DIR

Prints the metrics of a stored run (results/<run-id>, or a results root: its
"latest" run), every cell, in the Prometheus text format: what --push sends
and --textfile writes. See docs/metrics.md.
)"},
    {"report", R"(usage: vmlat report RUN_DIR [RUN_DIR...] [options]

Renders a stored run (results/<run-id>, or a results root: its "latest" run).
Several runs (other machines, another kernel, one CI job per host) make one
report: their cells together, a cell measured in more than one run shown once
per run and marked with its run, the seed table's columns grouped by machine
(host_facts hostname, else cpu_model) when the runs come from more than one,
and the verdict the worst of the runs'.
HTML (the default) is one self-contained file, no script and nothing loaded
from the network: the verdict and the system first, the gates (failures and
by how much they exceeded their bound), the seed study's worst-case table,
the period sweep, then per cell its statistics per CPU, a histogram (1us bins,
log count axis) and the complementary CDF (log-log), host facts and plugin
versions. Markdown is for a CI job summary or a merge-request comment: gates
not passed, the worst-case tables, the cells (failing first). See
docs/report.md. Exits 0 when written, 2 for a bad directory or usage, 3 if the
output cannot be written. The run's verdict is not the exit code: use the exit
code of 'vmlat run' (or 'vmlat compare'; 'vmlat gate' for the runs of a
fan-out) to gate.

options:
  --format F          html (default), markdown or json
  --output FILE       where to write (default: RUN_DIR/report.html for html,
                      stdout for markdown and json; '-' is stdout)
  --baseline RUN_DIR  compare with this run: a comparison table (tolerance 10%),
                      and the baseline's CCDF overlaid on each cell's (one
                      RUN_DIR only)
)"},
    {"gate", R"(usage: vmlat gate RUN_DIR... [--junit FILE] [--markdown FILE]

The last job of a fan-out (docs/fan-out.md): the runs of one plan's CI jobs
(`vmlat run PLAN --host NAME`, one job per host; run directories, or results
roots: their "latest" run) judged as one run of the whole plan. The runs must
be of one plan, byte for byte, with the same selection and the same cut into
shares (else exit 2). Every cell of the plan must be measured in some run: a
cell in no run (a job that did not run, a run directory not given) or not
measured there is never a pass. Prints a line per failing cell (FAIL: the
cell, its host, its run, each failing gate with its value and bound) and per
cell not measured (NOT MEASURED: why), then the verdict line.

exit codes: 0 every cell of the plan measured and every gate passed; 1 a
gate failed, a claim with gate = true is violated over the merged cells, or
a run exited 1 by its own plan's rules (1 wins over 3, as in 'vmlat run'); 3
a cell of the plan not measured in any run, or a gate not evaluated; 2 bad
usage, an unreadable run, or runs of different plans or selections.

options:
  --junit FILE        JUnit XML of the merged runs: a testcase per cell x gate,
                      a cell in no run as an error
  --markdown FILE     the verdict, the failing and missing cells, then the
                      merged runs' report in Markdown (a CI job summary)
)"},
    {"export", R"(usage: vmlat export --format F RUN_DIR [RUN_DIR...] [options]

Writes a stored run (results/<run-id>, or a results root: its "latest" run;
several runs are merged as 'vmlat report' merges them) in a format another
test system reads. See docs/export.md.
  kcidb        one KCIDB v5 JSON document (KernelCI): a checkout, a build and
               one test per cell and statistic (path
               vmlat.<backend>.<probe>.<cell>.<stat>), status from the gates
               (DONE where no gate bounds it), the value in seconds
  lava         'lava-test-case NAME --result R --measurement N --units us'
               lines, for a LAVA test definition's run steps
  lava-signal  the same as <LAVA_SIGNAL_TESTCASE ...> lines, for a console
  rt-tests     one cyclictest --json document per cell (threads per CPU with
               histogram, cycles, min, max, avg) in the directory --output
Exits 0 when written, 2 for a bad directory or usage, 4 if the output cannot
be written.

options:
  --format F             kcidb, lava, lava-signal or rt-tests (required)
  --output PATH          file to write (default: stdout); rt-tests: directory
  --kcidb-origin NAME    KCIDB origin, [a-z0-9_]+ (default vmlat)
  --kcidb-checkout ID    checkout id (default: the run id), prefixed with ORIGIN:
  --kcidb-build ID       build id (default: the run id), prefixed with ORIGIN:
  --kcidb-commit HASH    the kernel's git commit (40 hex digits)
  --artifacts-url URL    where the run directories are published: output_files
                         become URL/<run-id>/cells/<cell>/<file> (default:
                         file:// URLs of the files on this machine)
)"},
    {"compare", R"(usage: vmlat compare BASE... NEW_RUN [options]

Compares a stored run with a baseline cell by cell (cells are matched by id):
the change of p50, p99, p99.9 and max and a verdict per cell and statistic:
regressed, improved, unchanged or inconclusive. NEW_RUN is a run directory
(or a results root: its "latest" run). BASE is one or more of:
  a run directory            that run
  a results directory        every complete run of NEW's plan there that
                             started no later than NEW (NEW left out)
With 3 or more earlier runs the run-to-run spread of each statistic is
learnt from them and a change is regressed only when NEW lies outside what
the history predicts at the confidence (0.99), controlled over every
statistic of the comparison (Benjamini-Hochberg), and beyond the tolerance;
inconclusive says what would make it conclusive (more runs, longer cells).
With 1 or 2 earlier runs the spread cannot be judged (it says so): a
statistic regresses when NEW > BASE + tolerance (2 runs: their median); a
percentile's tolerance is never below 1us, its resolution. See
docs/statistics.md. Cells on one side only are listed; regressions come
first, one line each naming the cell and the change.

exit codes: 0 no statistic regressed (inconclusive never fails); 1 a
statistic regressed; 3 a cell of BASE's newest run not measured in NEW
(absent, infra error, interrupted, skipped), or a cell of NEW not measured (1
wins over 3); 2 bad usage, an unreadable directory, or a results directory
without an earlier complete run of the plan.

options:
  --last N            the newest N runs of the baseline only
  --confidence C      1 - the comparison's false-alarm rate (default 0.99)
  --tolerance T       for every statistic: a percentage ("10%", the default)
                      or a duration ("20us"): a smaller change never regresses
  --tolerance STAT=T  for one statistic (p50, p99, p99.9, max), e.g. max=50us;
                      repeatable
  --format F          text (default), markdown or json
  --output FILE       write there instead of stdout
)"},
    {"history", R"(usage: vmlat history RESULTS_DIR [options]

Reads every complete run of a plan in RESULTS_DIR (oldest first by start
time) as series: per cell and statistic (p50, p99, p99.9, max) its value in
each run that measured it. Finds the change points of all the series
together (E-divisive means with a t-test, binary segmentation, controlled
over every series: docs/statistics.md, "Change points") and for each names
the run where the change starts and the recorded facts that differ from the
run before it (kernel, command line, QEMU, Xen, tuning: as vmlat compare
lists them). Exits 0 when written, 2 for bad usage or a directory without a
complete run of the plan, 3 if the output cannot be written, 4 if the push
failed. See
docs/report.md.

options:
  --plan NAME         the plan whose runs to read (default: that of the
                      directory's latest run)
  --last N            the newest N runs only
  --confidence C      1 - the false-alarm rate over all series (default 0.99)
  --format F          text (default), markdown, json, html (a page with a
                      plot per cell, change points marked) or prometheus
                      (the change-point metrics, e.g. for a node_exporter
                      textfile: docs/metrics.md, "Change points")
  --output FILE       write there (atomically) instead of stdout
  --push URL          also push the change-point metrics to a Pushgateway
                      (job vmlat_history, one group per plan); exit 4 if
                      that fails
  --push-timeout D    time budget of the push, retries included (default 30s)
)"},
    {"monitor", R"(usage: vmlat monitor PLAN [options]

Measures one cell of the plan continuously, like a latency farm: the backend
is prepared and booted and the workload started once, then the probe streams
one window after another with no time unmeasured between them (engine native;
cyclictest and timerlat run once per window, with gaps between the runs).
Everything is kept in a session directory RESULTS/monitor-<time>-<pid>/
(docs/session-format.md: plan, facts, a checksummed log of every window's
statistics and worst wake-ups, gaps, the cumulative histogram; 'vmlat report
SESSION_DIR' renders it) and served live on http://LISTEN/metrics. A backend
or probe that fails after the first window is torn down and brought up again
after a back-off (1s doubling to 60s), the time lost recorded as a gap.
SIGHUP reopens the logs. Ctrl-C (SIGINT) or SIGTERM stops it cleanly: the
workload is stopped, the backend torn down, no process is left. Exits 0 after
a clean stop, 3 if the cell could not be measured at all, 2 for a bad plan,
cell, address or option.

options:
  --listen ADDR       address of /metrics (default 127.0.0.1:9464; port 0 picks one)
  --window D          length of one window (default 10s; engine native: whole ms)
  --cell ID           the cell to measure (default: the plan's first cell;
                      'vmlat plan PLAN' lists them)
  --for D             stop by itself after D
  --results DIR       where the session directory goes (default: [plan] results)
  --max-disk SIZE     bound of the window logs together (default 256MiB); the
                      oldest rotated log is deleted first
  --max-file SIZE     rotate the window log at this size (default 16MiB)
  --max-age D         delete rotated logs older than D (default 720h: 30 days)
  --plugin-dir DIR    search DIR for plugins first (repeatable)
  --no-wait           exit 3 at once if another vmlat measures on this host
  --lock-dir DIR      directory of the host lock (default $VMLAT_LOCK_DIR,
                      else /run/vmlat)
)"},
    {"validate", R"(usage: vmlat validate PLAN [--plugin-dir DIR]

Checks the plan: TOML syntax, every key and value, the matrix, the gates, and
each plugin instance's settings (the plugins validate their own tables).
Prints every error as file:line:col: message. Exits 0 if valid, 2 if not.
)"},
    {"plan", R"(usage: vmlat plan PLAN [--json] [--plugin-dir DIR]

Prints the expanded cells of the plan (index, id and axis values), and the
gates that apply to each, without running anything. --json prints JSON.
)"},
    {"plugins", R"(usage: vmlat plugins [--plugin-dir DIR]

Lists every plugin file found on the search path (--plugin-dir, then
$VMLAT_PLUGIN_PATH, the installed tree beside this executable or else the
build tree, the install directory) with its name,
kind, version, ABI and file; refused files are listed with the reason.
)"},
    {"version", "usage: vmlat version\n\nPrints vmlat's version and plugin ABI version.\n"},
    {"lab", R"(usage: vmlat lab xen run|start|stop|ssh|build [options] [-- COMMAND...]

Runs labs/xen/xen-lab (libexec/vmlat/xen-lab once installed) with the
rest of the command line: Debian's Xen 4.17 under QEMU with a PV Dom0 built
from Debian packages, Dom0 reachable as an SSH host. `vmlat lab xen --help`
lists its options; labs/xen/README.md has the details. A lab started
with --vmlat-prefix is a Xen host for plans:
  vmlat run plans/xen-lab.toml --inventory LAB_DIR/inventory.ini
)"},
    {"lint-domain", R"(usage: vmlat lint-domain NAME|FILE.xml [--uri URI] [--format text|json] [--no-host]
                         [--host-cpus LIST] [--isolated LIST] [--nohz-full LIST]

Checks a libvirt domain (by name, through libvirt: qemu:///system unless
--uri) or a domain XML file against libvirt's "KVM real time" rules and
against the host (isolcpus, nohz_full, the pinned CPUs). Each finding names
its rule, severity, XML path and fix; nothing is changed. Runs
libexec/vmlat/vmlat-lint-domain (built where libvirt-dev is installed);
plugins/common/libvirt/README.md lists every rule.
exit codes: 0 no error finding (warnings allowed), 1 error findings, 2 bad
usage or not a domain XML, 3 libvirt unreachable or no such domain.
)"},
    {"help", "usage: vmlat help [COMMAND]\n"},
};

struct Args {
  std::string command;
  std::vector<std::string> positional;
  app::Dirs plugin_dirs;
  RunOptions run;
  bool json = false;
  bool quiet = false;
  bool progress = false;
  bool help = false;
  MetricsExport metrics;
  MonitorOptions monitor;
  CellRunOptions cell_run;
  std::string format, output, baseline;  // report, compare
  std::string markdown;                  // gate --markdown
  std::vector<std::string> tolerances;
  std::string plan_name;     // history --plan
  report::ExportCommand export_command;
  std::size_t last = 0;      // compare --last
  double confidence = 0.99;  // compare --confidence
};

using Handler = int (*)(Args&);
struct Command {
  const char* name;
  const char* synopsis;  // "run PLAN": the left column of `vmlat help`
  const char* summary;   // one line; empty: not listed (run-cell, help's own)
  std::vector<std::string> options;
  Handler handler;
};

int cmd_run(Args& a);
int cmd_validate(Args& a);
int cmd_plan(Args& a);
int cmd_hosts(Args& a);
int cmd_provision(Args& a);
int cmd_run_cell(Args& a);
int cmd_push(Args& a);
int cmd_metrics(Args& a);
int cmd_report(Args& a);
int cmd_compare(Args& a);
int cmd_export(Args& a);
int cmd_gate(Args& a);
int cmd_history(Args& a);
int cmd_monitor(Args& a);
int cmd_plugins(Args& a);
int cmd_version(Args& a);
int cmd_help(Args& a);

// `lab` takes the rest of the command line as it is (main() runs it first).
const Command kCommands[] = {
    {"run", "run PLAN", "run every cell of the plan, store results, apply gates",
     {"--results", "--junit", "--only", "--duration", "--progress", "--quiet", "--plugin-dir", "--push", "--push-timeout",
      "--textfile", "--resume", "--no-wait", "--lock-dir", "--inventory", "--no-provision", "--bundle", "--bisect", "--host",
      "--this-host"},
     cmd_run},
    {"validate", "validate PLAN", "check a plan (and each plugin's settings) without running it", {"--plugin-dir"},
     cmd_validate},
    {"plan", "plan PLAN", "print the plan's expanded cells without running anything", {"--json", "--plugin-dir"}, cmd_plan},
    {"hosts", "hosts PLAN", "list the plan's hosts: reachable or not, tags, facts", {"--inventory", "--json", "--plugin-dir"},
     cmd_hosts},
    {"provision", "provision PLAN", "provision the plan's remote hosts with Ansible, measure nothing",
     {"--inventory", "--bundle", "--results", "--plugin-dir"}, cmd_provision},
    {"run-cell", "run-cell PLAN", "",
     {"--cell", "--out", "--index", "--run-id", "--host-name", "--duration", "--lock-dir", "--expect-version",
      "--cancel-on-eof", "--send-back", "--wait-go", "--plugin-dir"},
     cmd_run_cell},
    {"push", "push RUN_DIR", "push a stored run's metrics to a Prometheus Pushgateway",
     {"--url", "--push-timeout", "--textfile"}, cmd_push},
    {"metrics", "metrics RUN_DIR", "print a stored run's metrics (Prometheus text format)", {}, cmd_metrics},
    {"report", "report RUN_DIR...", "write a stored run's report (HTML with plots, Markdown, JSON)",
     {"--format", "--output", "--baseline"}, cmd_report},
    {"gate", "gate RUN_DIR...", "merge the runs of a plan's fan-out jobs and gate them as one run of the plan",
     {"--junit", "--markdown"}, cmd_gate},
    {"export", "export RUN_DIR...", "write a stored run as KCIDB JSON, LAVA test cases or rt-tests JSON",
     {"--format", "--output", "--kcidb-origin", "--kcidb-checkout", "--kcidb-build", "--kcidb-commit", "--artifacts-url"},
     cmd_export},
    {"compare", "compare BASE... NEW", "compare a stored run with an earlier run or a history of them",
     {"--tolerance", "--format", "--output", "--last", "--confidence"}, cmd_compare},
    {"history", "history RESULTS_DIR", "a plan's runs as series per cell and statistic: change points and what changed",
     {"--plan", "--last", "--confidence", "--format", "--output", "--push", "--push-timeout"}, cmd_history},
    {"monitor", "monitor PLAN", "measure one cell continuously, serve live /metrics",
     {"--listen", "--window", "--cell", "--for", "--plugin-dir", "--no-wait", "--lock-dir", "--results", "--max-disk",
      "--max-file", "--max-age"},
     cmd_monitor},
    {"plugins", "plugins", "list the plugins found, with kind, version, ABI and file", {"--plugin-dir"}, cmd_plugins},
    {"lab", "lab xen ...", "the Xen virtual lab: Xen under QEMU with Dom0 as an SSH host", {}, nullptr},
    {"lint-domain", "lint-domain NAME|FILE.xml", "check a libvirt domain's XML against the real-time rules", {}, nullptr},
    {"version", "version", "print the version and the plugin ABI", {}, cmd_version},
    {"help", "help [COMMAND]", "this text, or a command's help", {}, cmd_help},
};

const Command* find_command(const std::string& name) {
  for (const auto& c : kCommands)
    if (name == c.name) return &c;
  return nullptr;
}

std::string usage_text() {
  std::string text = R"(usage: vmlat <command> [options]

Measures real-time scheduling latency on bare metal and in virtual machines,
as declared in a TOML test plan, and gates CI on the worst cases.

commands:
)";
  for (const auto& c : kCommands) {
    if (!*c.summary) continue;
    std::string left = std::string("  ") + c.synopsis;
    text += left + std::string(left.size() < 18 ? 18 - left.size() : 2, ' ') + c.summary + "\n";
  }
  text += R"(
exit codes: 0 pass, 1 a gate failed, 2 bad plan or usage,
            3 infrastructure error (a cell could not be measured),
            4 measured and gated fine but the metrics export failed, 130 interrupted
docs: docs/plan-format.md, docs/results-format.md, docs/writing-plugins.md,
      docs/metrics.md, docs/report.md, docs/export.md, docs/fan-out.md
)";
  return text;
}

// `vmlat run --bisect`: exit codes for `git bisect run` (docs/bisect.md).
bool g_bisect = false;
constexpr int kBisectSkip = 125;   // this commit cannot be tested: git bisect skips it
constexpr int kBisectAbort = 255;  // the command itself is wrong: stop the bisection

int bisect_code(int code) {
  if (!g_bisect) return code;
  int mapped = code;
  const char* what = "";
  switch (code) {
    case exit_code::pass: mapped = 0; what = "good"; break;
    case exit_code::export_failed: mapped = 0; what = "good (the gates passed; only the metrics export failed)"; break;
    case exit_code::gate_failed: mapped = 1; what = "bad (a gate failed)"; break;
    case exit_code::infra: mapped = kBisectSkip; what = "skip (infrastructure error: a broken lab never blames a commit)"; break;
    case exit_code::interrupted: mapped = kBisectSkip; what = "skip (interrupted)"; break;
    case exit_code::usage: mapped = kBisectAbort; what = "abort (bad plan or command line at this commit)"; break;
    default: mapped = kBisectSkip; what = "skip"; break;
  }
  std::cerr << "vmlat: --bisect: exit " << code << " -> " << mapped << ", " << what << "\n";
  return mapped;
}

[[noreturn]] void usage_error(const std::string& message, const std::string& command) {
  std::cerr << "vmlat: " << message << "\n";
  std::cerr << "try 'vmlat " << (command.empty() ? "" : "help " + command) << (command.empty() ? "--help" : "") << "'\n";
  std::exit(bisect_code(exit_code::usage));
}

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> words(argv + 1, argv + argc);
  a.run.command_line.assign(argv, argv + argc);
  std::size_t i = 0;
  if (i < words.size() && (words[i] == "-h" || words[i] == "--help")) {
    a.command = "help";
    return a;
  }
  if (i < words.size() && words[i] == "--version") {
    a.command = "version";
    return a;
  }
  if (i >= words.size()) usage_error("no command given", "");
  a.command = words[i++];
  const Command* command = find_command(a.command);
  if (!command) usage_error("unknown command '" + a.command + "'", "");
  auto value = [&](const std::string& opt) -> std::string {
    if (i >= words.size()) usage_error("option " + opt + " needs a value", a.command);
    return words[i++];
  };
  while (i < words.size()) {
    std::string w = words[i++];
    if (w == "-h" || w == "--help") {
      a.help = true;
      continue;
    }
    if (w.rfind("--", 0) != 0 || w == "--") {
      a.positional.push_back(w);
      continue;
    }
    std::string opt = w, inline_value;
    bool has_inline = false;
    if (auto eq = w.find('='); eq != std::string::npos) {
      opt = w.substr(0, eq);
      inline_value = w.substr(eq + 1);
      has_inline = true;
    }
    const auto& ok = command->options;
    if (std::find(ok.begin(), ok.end(), opt) == ok.end())
      usage_error("unknown option '" + opt + "' for '" + a.command + "'", a.command);
    auto arg = [&]() { return has_inline ? inline_value : value(opt); };
    if (opt == "--plugin-dir") a.plugin_dirs.emplace_back(arg());
    else if (opt == "--results") a.run.results_root = a.monitor.results_root = arg();
    else if (opt == "--junit") a.run.junit_path = arg();
    else if (opt == "--only") {
      auto v = arg();
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0) usage_error("--only takes AXIS=VALUE, got '" + v + "'", a.command);
      a.run.only.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (opt == "--duration") {
      std::string why;
      auto d = parse_duration(arg(), &why);
      if (!d || d->count() <= 0) usage_error("--duration: " + (why.empty() ? "must be positive" : why), a.command);
      a.run.duration = a.cell_run.duration = *d;
    } else if (opt == "--push" || opt == "--url") {
      a.metrics.push_url = arg();
      if (auto why = app::check_push_url(a.metrics.push_url); !why.empty()) usage_error(opt + ": " + why, a.command);
    } else if (opt == "--push-timeout" || opt == "--window" || opt == "--for") {
      std::string why;
      auto d = parse_duration(arg(), &why);
      if (!d || d->count() <= 0) usage_error(opt + ": " + (why.empty() ? "must be positive" : why), a.command);
      if (opt == "--push-timeout") a.metrics.push_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      else if (opt == "--window") a.monitor.window = *d;
      else a.monitor.stop_after = *d;
    } else if (opt == "--textfile") a.metrics.textfile_dir = std::filesystem::path(arg());
    else if (opt == "--resume") a.run.resume_dir = std::filesystem::path(arg());
    else if (opt == "--no-wait") a.run.no_wait = a.monitor.no_wait = true;
    else if (opt == "--lock-dir") a.run.lock_dir = a.monitor.lock_dir = a.cell_run.lock_dir = std::filesystem::path(arg());
    else if (opt == "--inventory") a.run.inventory = std::filesystem::path(arg());
    else if (opt == "--no-provision") a.run.no_provision = true;
    else if (opt == "--host") {
      auto v = arg();
      if (v.empty() || v == "tag=") usage_error("--host takes a host name or tag=TAG", a.command);
      a.run.host_share.push_back(v);
    } else if (opt == "--this-host") {
      if (!a.run.this_host.empty()) usage_error("--this-host: this machine is one host (given twice)", a.command);
      a.run.this_host = arg();
      if (a.run.this_host.empty()) usage_error("--this-host takes a host name", a.command);
    }
    else if (opt == "--bisect") {
    }
    else if (opt == "--bundle") a.run.bundle = std::filesystem::path(arg());
    else if (opt == "--cell" && a.command == "run-cell") a.cell_run.cell_id = arg();
    else if (opt == "--out") a.cell_run.out_dir = std::filesystem::path(arg());
    else if (opt == "--run-id") a.cell_run.run_id = arg();
    else if (opt == "--host-name") a.cell_run.host_name = arg();
    else if (opt == "--expect-version") a.cell_run.expect_version = arg();
    else if (opt == "--cancel-on-eof") a.cell_run.cancel_on_eof = true;
    else if (opt == "--send-back") a.cell_run.send_back = true;
    else if (opt == "--wait-go") a.cell_run.wait_go = true;
    else if (opt == "--index") {
      auto v = arg();
      try {
        std::size_t used = 0;
        a.cell_run.index = std::stoi(v, &used);
        if (used != v.size() || a.cell_run.index < 1) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        usage_error("--index takes a positive number, got '" + v + "'", a.command);
      }
    }
    else if (opt == "--listen") a.monitor.listen = arg();
    else if (opt == "--max-disk" || opt == "--max-file") {
      std::string why;
      auto bytes = app::parse_size_bytes(arg(), &why);
      if (!bytes) usage_error(opt + ": " + why, a.command);
      (opt == "--max-disk" ? a.monitor.bounds.max_bytes : a.monitor.bounds.file_bytes) = *bytes;
    } else if (opt == "--max-age") {
      std::string why;
      auto d = parse_duration(arg(), &why);
      if (!d || d->count() <= 0) usage_error("--max-age: " + (why.empty() ? "must be positive" : why), a.command);
      a.monitor.bounds.max_age = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    else if (opt == "--cell") a.monitor.cell_id = arg();
    else if (opt == "--progress") a.progress = true;
    else if (opt == "--quiet") a.quiet = true;
    else if (opt == "--json") a.json = true;
    else if (opt == "--format") a.format = arg();
    else if (opt == "--output") a.output = arg();
    else if (opt == "--baseline") a.baseline = arg();
    else if (opt == "--markdown") a.markdown = arg();
    else if (opt == "--tolerance") a.tolerances.push_back(arg());
    else if (opt == "--plan") a.plan_name = arg();
    else if (opt == "--kcidb-origin") a.export_command.kcidb_origin = arg();
    else if (opt == "--kcidb-checkout") a.export_command.kcidb_checkout = arg();
    else if (opt == "--kcidb-build") a.export_command.kcidb_build = arg();
    else if (opt == "--kcidb-commit") a.export_command.kcidb_commit = arg();
    else if (opt == "--artifacts-url") a.export_command.artifacts_url = arg();
    else if (opt == "--last") {
      const std::string v = arg();
      std::size_t used = 0;
      unsigned long n = 0;
      try {
        n = std::stoul(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || v.empty() || v[0] == '-' || v[0] == '+' || n == 0)
        usage_error("--last takes a number of runs (1 or more), got '" + v + "'", a.command);
      a.last = n;
    } else if (opt == "--confidence") {
      const std::string v = arg();
      std::size_t used = 0;
      double c = 0;
      try {
        c = std::stod(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || v.empty() || !(c > 0 && c < 1))
        usage_error("--confidence takes a probability between 0 and 1, e.g. 0.99, got '" + v + "'", a.command);
      a.confidence = c;
    }
  }
  if (a.run.resume_dir && (!a.run.only.empty() || a.run.duration || a.run.results_root || !a.run.host_share.empty() ||
                           !a.run.this_host.empty()))
    usage_error("--resume reuses the run's own directory, --only, --duration and --host: do not combine them", a.command);
  if (a.metrics.push_url.empty() && a.metrics.push_timeout && !a.help)
    usage_error("--push-timeout needs " + std::string(a.command == "push" ? "--url" : "--push"), a.command);
  if (a.command == "push" && a.metrics.push_url.empty() && !a.help) usage_error("missing --url URL (the Pushgateway)", a.command);
  return a;
}

std::string need_one(const Args& a, const char* what) {
  if (a.positional.size() != 1) usage_error(a.positional.empty() ? std::string("missing ") + what : "too many arguments", a.command);
  return a.positional.front();
}
std::string need_plan(const Args& a) { return need_one(a, "PLAN"); }
std::string need_run_dir(const Args& a) { return need_one(a, "RUN_DIR"); }

int cmd_run(Args& a) {
  a.run.progress = a.progress || (!a.quiet && isatty(STDERR_FILENO));
  return app::run(need_plan(a), a.plugin_dirs, a.run, a.metrics, std::cout, std::cerr);
}
int cmd_validate(Args& a) { return app::validate(need_plan(a), a.plugin_dirs, std::cout, std::cerr); }
int cmd_plan(Args& a) { return app::show_plan(need_plan(a), a.plugin_dirs, a.json, std::cout, std::cerr); }
int cmd_hosts(Args& a) { return app::hosts(need_plan(a), a.plugin_dirs, a.run.inventory, a.json, std::cout, std::cerr); }
int cmd_provision(Args& a) { return app::provision(need_plan(a), a.plugin_dirs, a.run, std::cout, std::cerr); }
int cmd_run_cell(Args& a) {
  const std::string plan = need_plan(a);
  if (a.cell_run.cell_id.empty() || a.cell_run.out_dir.empty()) usage_error("run-cell needs --cell ID and --out DIR", a.command);
  if (a.cell_run.run_id.empty()) a.cell_run.run_id = "run-cell";
  return app::run_cell(plan, a.plugin_dirs, a.cell_run, std::cout, std::cerr);
}
int cmd_push(Args& a) { return app::push(need_run_dir(a), a.metrics, std::cout, std::cerr); }
int cmd_metrics(Args& a) { return app::metrics(need_run_dir(a), std::cout, std::cerr); }
int cmd_report(Args& a) {
  if (a.positional.empty()) usage_error("missing RUN_DIR", a.command);
  return app::report(report::ReportCommand{a.positional.front(), a.format.empty() ? "html" : a.format, a.output, a.baseline,
                                           std::vector<std::string>(a.positional.begin() + 1, a.positional.end())},
                     std::cout, std::cerr);
}
int cmd_export(Args& a) {
  if (a.format.empty()) usage_error("missing --format (kcidb, lava, lava-signal or rt-tests)", a.command);
  if (a.positional.empty()) usage_error("missing RUN_DIR", a.command);
  auto c = a.export_command;
  c.format = a.format;
  c.output = a.output;
  c.runs = a.positional;
  return app::export_run(c, std::cout, std::cerr);
}
int cmd_gate(Args& a) {
  if (a.positional.empty()) usage_error("missing RUN_DIR (the runs of the plan's jobs)", a.command);
  return app::gate(report::GateCommand{a.positional, a.run.junit_path.string(), a.markdown}, std::cout, std::cerr);
}
// The options compare and history share.
template <class Command>
Command history_options(const Args& a) {
  Command c;
  c.format = a.format.empty() ? "text" : a.format;
  c.output = a.output;
  c.last = a.last;
  c.confidence = a.confidence;
  return c;
}
int cmd_compare(Args& a) {
  if (a.positional.size() < 2) usage_error("compare needs BASE (one or more) and NEW_RUN", a.command);
  auto c = history_options<report::CompareCommand>(a);
  c.bases.assign(a.positional.begin(), a.positional.end() - 1);
  c.now = a.positional.back();
  c.tolerances = a.tolerances;
  return app::compare(c, std::cout, std::cerr);
}
int cmd_history(Args& a) {
  auto c = history_options<report::HistoryCommand>(a);
  c.results_dir = need_one(a, "RESULTS_DIR");
  c.plan = a.plan_name;
  return app::history(c, a.metrics, std::cout, std::cerr);
}
int cmd_monitor(Args& a) { return app::monitor(need_plan(a), a.plugin_dirs, a.monitor, std::cout, std::cerr); }
int cmd_plugins(Args& a) { return app::list_plugins(a.plugin_dirs, std::cout); }
int cmd_version(Args&) {
  std::cout << "vmlat " << version_string << " (plugin ABI " << abi_version << ")\n";
  return exit_code::pass;
}
int cmd_help(Args& a) {
  if (a.positional.empty()) {
    std::cout << usage_text();
    return exit_code::pass;
  }
  auto it = kHelp.find(a.positional.front());
  if (it == kHelp.end()) usage_error("no help for '" + a.positional.front() + "'", "");
  std::cout << it->second;
  return exit_code::pass;
}

int dispatch(Args& a) {
  const Command* command = find_command(a.command);
  if (a.help && a.command != "help") {
    std::cout << kHelp.at(a.command);
    return exit_code::pass;
  }
  try {
    return command->handler(a);
  } catch (const std::exception& e) {
    std::cerr << "vmlat: " << e.what() << "\n";
    return exit_code::infra;
  }
}

// `vmlat lab xen ...`: the lab tool takes the rest of the command line as it is.
int run_lab(int argc, char** argv) {
  if (argc < 3 || std::string(argv[2]) == "-h" || std::string(argv[2]) == "--help") {
    std::cout << kHelp.at("lab");
    return argc < 3 ? exit_code::usage : exit_code::pass;
  }
  if (std::string(argv[2]) != "xen") usage_error("unknown lab '" + std::string(argv[2]) + "' (there is: xen)", "lab");
  return app::exec_libexec("xen-lab", std::vector<std::string>(argv + 3, argv + argc), std::cerr);
}

// `vmlat lint-domain ...`: vmlat-lint-domain takes the rest of the command
// line (its --help is the full usage).
int run_lint_domain(int argc, char** argv) {
  return app::exec_libexec("vmlat-lint-domain", std::vector<std::string>(argv + 2, argv + argc), std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "lab") return run_lab(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "lint-domain") return run_lint_domain(argc, argv);
  // Known before parsing, so that even a usage error is mapped for git bisect.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--bisect") g_bisect = true;
  Args a = parse_args(argc, argv);
  app::finish_process(bisect_code(dispatch(a)));
}
