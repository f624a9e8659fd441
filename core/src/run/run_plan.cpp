// `vmlat run PLAN`: the stages of a run, in order. Each stage is a file of
// its own in this directory (run.hpp lists them).
//
//   plan --select--> cells --place--> hosts --open--> run directory, run.json
//        --measure--> outcomes (a worker per host) --tally--> exit code
//        --> run.json, latest, JUnit, exporters, summary
#include <ostream>

#include "cell_support.hpp"
#include "facts.hpp"
#include "junit.hpp"
#include "gates/expect.hpp"
#include "gates/regression.hpp"
#include "run/progress.hpp"
#include "run/run.hpp"
#include "run/run_hosts.hpp"
#include "run/run_record.hpp"
#include "run/selection.hpp"
#include "run/summary.hpp"
#include "run/workers.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/local.hpp"
#include "vmlat/process.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

int run_plan(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::ostream& out, std::ostream& err) {
  install_cancel_handlers();

  // 1. Which cells, with which options (a resumed run: its own).
  Selection selection;
  if (int code = select_cells(plan, options, err, selection); code != exit_code::pass) return code;

  // 2. The hosts and which cells each takes, decided before anything runs.
  RunHosts hosts;
  if (int code = place_on_hosts(plan, registry, selection.options, selection.cells, err, hosts); code != exit_code::pass)
    return code;
  if (selection.cells.empty()) {  // --host: a share without cells is a job with nothing to do, not an error
    std::string names;
    for (const auto& n : hosts.share["hosts"]) names += (names.empty() ? "" : ", ") + n.get<std::string>();
    out << "vmlat: no cell of plan " << plan.name << " is in the share of " << names << ": nothing to measure, no run directory\n";
    return exit_code::pass;
  }

  // 3. The run's record: locks, the run directory, this machine's facts, run.json.
  RunRecord record(plan, selection);
  if (int code = record.open(hosts, err); code != exit_code::pass) return code;
  FileLogger run_log(record.dir() / "run.log", nullptr, "");
  run_log.info("vmlat " + std::string(version_string) + (selection.previous ? " resumes run " : " run ") + record.id() +
               " of plan " + plan.path.string() + " (sha256 " + plan.sha256 + ")");
  auto local_host = make_local_executor(record.dir() / ".work" / "host", "host");
  for (auto& h : hosts.hosts) {
    if (!h.spec.local() || !h.facts.empty()) continue;
    try {
      h.facts = collect_system_facts(*local_host);
    } catch (const std::exception& e) {
      h.facts = json{{"error", e.what()}};
    }
  }
  if (int code = record.begin(hosts, err); code != exit_code::pass) return code;
  preload_baselines(plan, err);

  // 4. The cells measured, a worker per host.
  const auto estimate = (selection.options.duration ? *selection.options.duration : plan.duration) + std::chrono::seconds(3);
  Progress progress(selection.options.progress, err, selection.cells.size(), estimate);
  RunParts parts{plan, registry, selection, hosts, record, progress, run_log, *local_host, err};
  std::vector<CellOutcome> outcomes;
  if (int code = measure_cells(parts, outcomes); code != exit_code::pass) return code;

  // 5. What it comes to: the gates, then the plan's claims over the cells measured.
  Tally tally_of_run = tally(outcomes);
  std::vector<json> cell_results;
  for (const auto& o : outcomes)
    if (o.has_result()) cell_results.push_back(result_json(o));
  const std::vector<ExpectResult> expects = judge_run_expects(plan, cell_results, tally_of_run);
  if (!plan.expects.empty()) {
    json entries = json::array();
    for (const auto& e : expects) entries.push_back(expect_json(e));
    record.set_expects(std::move(entries));
  }
  int code = tally_of_run.exit_code(plan, cancel_requested());
  if (!record.close(code, tally_of_run.summary(), cancel_requested(), err) && code == exit_code::pass) code = exit_code::infra;
  record.link_latest();
  if (!selection.options.junit_path.empty()) {
    try {
      write_file_atomic(selection.options.junit_path, junit_xml(plan.name, record.run(), cell_results));
    } catch (const std::exception& e) {
      err << "vmlat: cannot write JUnit file " << selection.options.junit_path << ": " << e.what() << "\n";
      if (code == exit_code::pass) code = exit_code::infra;
    }
  }
  if (selection.options.on_run_done) {
    int after_export = selection.options.on_run_done(code, record.run(), cell_results, record.dir());
    if (after_export != code) {  // e.g. the metrics export failed: run.json says so too
      code = after_export;
      record.set_exit_code(code, err);
    }
  }
  print_summary(out, plan, selection.cells, outcomes, tally_of_run, hosts.placed);
  print_expects(out, expects);
  out << "results: " << record.shown_dir().string() << "\n";
  run_log.info("finished with exit code " + std::to_string(code));
  kill_all_children();
  return code;
}

}  // namespace vmlat
