// What a report shows, built once from a stored run and rendered as HTML,
// Markdown or JSON (report.hpp). docs/report.md describes the result.
//
// A cell holds named series of latency histograms. Today every cell has one,
// "latency" (result.json's `merged` and `per_cpu`); probes that measure more
// than one latency per wake-up (timerlat's IRQ and thread latency) add
// series, and everything here iterates over them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gates/expect.hpp"
#include "run_store.hpp"
#include "vmlat/json.hpp"

namespace vmlat::report {

inline constexpr const char* kDefaultSeries = "latency";

// One series of a cell: {"stats", "histogram"} documents, merged and per CPU.
struct Series {
  std::string name;
  const json* merged = nullptr;                              // null: nothing measured
  std::vector<std::pair<std::string, const json*>> per_cpu;  // CPU number (as text) -> document, numeric order
};
// The series of a result.json (the default series first).
std::vector<Series> cell_series(const json& result);

struct Cell {
  int index = 0;
  std::string id;
  std::vector<std::pair<std::string, std::string>> axes;
  std::string status;  // measured, infra-error, skipped, interrupted, not-run, pending
  std::string error;
  const json* result = nullptr;  // null when run.json lists the cell but it has no result.json
  std::vector<Series> series;
  std::vector<const json*> gates;       // result.json gates[]
  std::optional<long long> max_ns;      // the default series' merged max
  // Where the cell comes from: its run (a merged report holds several), the
  // plan host it ran on, and the machine (host_facts: hostname, else cpu_model).
  const StoredRun* stored = nullptr;
  std::string run_id, host, machine;
  // Merged reports: the other runs holding a cell with the same axes and
  // host. Such a cell is shown once per run, each marked, never dropped.
  std::vector<std::string> also_in;
  std::string axis(const std::string& name) const;  // "" if absent
  bool measured() const { return status == "measured" && max_ns.has_value(); }
  // Worst gate verdict: "fail" > "error" > "skipped" > "pass"; "" without gates.
  std::string worst_verdict() const;
};

struct GateCounts {
  int pass = 0, fail = 0, error = 0, skipped = 0, flaky = 0;
  int total() const { return pass + fail + error + skipped + flaky; }
};

// The answer first: FAIL (a gate failed), INFRA ERROR (a cell or a gate
// could not be measured or evaluated), INCOMPLETE (interrupted or still
// running), PASS, or MEASURED (no gates).
struct RunVerdict {
  std::string word;
  std::string detail;  // "2 gates failed in 1 cell", ...
  std::string css() const;  // pass, fail, error, incomplete
};

struct Run {
  const StoredRun* stored = nullptr;
  std::string run_id, plan_name, plan_description, status, started, finished, vmlat_version;
  std::optional<int> exit_code;
  std::vector<Cell> cells;
  GateCounts gates;
  RunVerdict verdict;
  int measured = 0;
  std::map<std::string, std::string> accelerators;  // backend -> "tcg", ... (see accelerators())
  // The plans' [[expect]] claims (run.json "expects" of each run, the same
  // claim once) judged again over these cells: a merged report judges them
  // over every run's cells. A violated claim with gate = true makes the
  // verdict FAIL.
  std::vector<ExpectResult> claims;
  std::vector<const Run*> sources;  // merge_runs: the runs merged, in order; empty for one run
  bool merged() const { return !sources.empty(); }
  std::vector<const Run*> runs() const { return merged() ? sources : std::vector<const Run*>{this}; }  // sources, or itself
};
Run make_run(const StoredRun& stored);

// `vmlat report RUN...`: several runs as one (different machines, a reboot
// into another kernel, one CI job per host). The cells of every run, in
// order and renumbered; a cell with the same axes and host in two runs is
// kept twice, each naming the other in also_in. When the runs come from more
// than one machine every cell gains the axis "machine" (Cell::machine): the
// seed tables group their columns by it, the sweep and the decomposition
// keep machines apart. The verdict is judged over all cells, so it is the
// worst of the runs'. A run id that repeats becomes "<id>#2", ... (in
// `runs` too). `runs` must outlive the result; one run is returned as it is.
Run merge_runs(std::vector<Run>& runs);

// One table in the seed study's layout: rows are host/guest kernels
// (NRT/NRT, NRT/RT, RT/NRT, RT/RT; bare-metal cells as NRT or RT), columns
// per backend, no stress vs each stress workload; entries the worst case of
// the cells that fall in them. One table per combination of the other axes
// (probe, period, ...), listed in `fixed`.
struct SeedEntry {
  std::optional<long long> worst_ns;  // over its measured cells
  std::vector<int> cells;             // indices into Run::cells
  int not_measured = 0;
};
struct SeedColumn {
  std::string backend, workload;  // axis values
  std::string machine;            // the column group of a merged report's machine; "" for one machine
  std::string label() const;      // "no stress" or the workload's name
};
// The accelerators the cells of a backend ran on (facts.backend.accelerator,
// e.g. "tcg" for a kvm guest emulated in software), joined by "/"; "" if none
// say. The seed table shows it beside the backend: TCG numbers are not KVM's.
std::string accelerators(const Run& run, const std::string& backend);  // from Run::accelerators
struct SeedTable {
  std::vector<std::pair<std::string, std::string>> fixed;
  std::vector<std::string> rows;
  std::vector<SeedColumn> columns;
  std::map<std::pair<std::size_t, std::size_t>, SeedEntry> entries;  // (row, column)
};
std::vector<SeedTable> seed_tables(const Run& run);

// Kernel labels of a cell: host from the host_kernel axis (else the host
// facts' preempt_rt), guest from the guest_kernel axis (else the backend's
// guest facts); "" when there is no guest (the host backend).
std::string host_kernel_label(const Cell& cell);
std::string guest_kernel_label(const Cell& cell);
// The seed table's row: "NRT/RT" (host/guest kernel) for a guest,
// "Host (RT)" for bare metal, "Dom0 (NRT)" for a host-backend cell measured
// in Xen's control domain (host_facts.xen_role).
std::string seed_row_label(const Cell& cell);

// A seed or sweep entry split by the run its cells come from: one part per
// run, in the order of the runs (a single part when all come from one run).
std::vector<std::pair<std::string, SeedEntry>> entry_by_run(const Run& run, const SeedEntry& entry);

// The period sweep: rows are the combinations of every other axis, columns
// the periods (shortest first), entries worst cases. Empty when the run has
// fewer than two periods.
struct SweepRow {
  std::vector<std::pair<std::string, std::string>> axes;
  std::map<std::string, SeedEntry> by_period;
};
struct PeriodSweep {
  std::vector<std::string> periods;
  std::vector<SweepRow> rows;
};
PeriodSweep period_sweep(const Run& run);

// The seed's figures: several cells' histograms and CCDFs in one plot. By
// default one per column group of each seed table (a machine's backend: its
// kernel combinations without and with stress) and one per row of the period
// sweep (its periods); a figure needs two measured cells and shows at most
// kMaxOverlayLines of them.
inline constexpr std::size_t kMaxOverlayLines = 8;
struct OverlayLine {
  std::string label;  // "NRT/RT, stress", "50us", with "(run <id>)" when the entry holds several runs
  int cell = 0;       // index into Run::cells
};
struct Overlay {
  std::string kind;   // "seed" or "sweep"
  std::string title;
  std::vector<OverlayLine> lines;
  std::size_t left_out = 0;  // measured cells beyond kMaxOverlayLines
  std::string draw = "both";  // "both", "ccdf" or "histogram"
};
std::vector<Overlay> default_overlays(const Run& run);
// The figures the plans choose ([[report.figure]], run.json "report" of each
// run; the same figure once): kind "plan", the measured cells the selector
// matches, each line labelled by the axes the figure's cells differ in (and
// its run where two runs hold the same cell). A figure with fewer than two
// measured cells is kept with its lines: the page says it has nothing to overlay.
std::vector<Overlay> plan_overlays(const Run& run);
// The report's own figures are drawn unless a run's plan says
// [report] default_figures = false.
bool default_figures_wanted(const Run& run);

// "vm, kernel 6.1.0-18-amd64 (PREEMPT_DYNAMIC), 2 x AMD EPYC": what is known of a host.
std::string host_identity(const json& facts);

// "12.3 µs" below 100us, "851 µs" above: the seed's worst-case cells.
std::string worst_case_text(long long ns);

}  // namespace vmlat::report
