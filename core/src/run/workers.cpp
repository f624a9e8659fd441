#include "run/workers.hpp"

#include <map>
#include <mutex>
#include <ostream>
#include <thread>

#include "bounded.hpp"
#include "cell/measure.hpp"
#include "cell/store.hpp"
#include "gates/evaluate.hpp"
#include "gates/expect.hpp"
#include "remote.hpp"
#include "run/provision.hpp"
#include "run/retest.hpp"
#include "run/summary.hpp"
#include "ssh.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/interrupt.hpp"

namespace vmlat {

namespace {


// A kept cell of a resumed run: measured or skipped there, its result.json
// readable. Its gates are evaluated again with this plan (the same plan).
std::optional<CellOutcome> kept_outcome(const Plan& plan, const Cell& cell, const std::filesystem::path& cell_dir) {
  std::string why;
  auto result = read_json_file(cell_dir / "result.json", &why);
  if (!result) return std::nullopt;
  auto o = outcome_from_result(*result, &why);
  if (!o || (o->status != CellStatus::measured && o->status != CellStatus::skipped)) return std::nullopt;  // measured again
  if (o->measured() && !o->merged) return std::nullopt;
  o->gates = evaluate_gates(plan, cell.spec, o->status, o->error, o->merged ? &*o->merged : nullptr, &o->series_merged,
                            o->document.contains("facts") ? &o->document["facts"] : nullptr,
                            measure_phase_seconds(o->document));
  // A failure its retests decided (flaky, reproduced, or undecided when a
  // retest could not be measured) keeps that verdict: the first measurement
  // alone would say "fail" again.
  if (o->retests.is_array() && !o->retests.empty())
    if (auto stored = result->find("gates"); stored != result->end() && stored->is_array())
      for (auto& g : o->gates) {
        if (g.verdict != Verdict::fail) continue;
        for (const auto& s : *stored)
          if (s.is_object() && s.value("gate", "") == g.gate)
            if (auto v = parse_verdict(s.value("verdict", "")); v && *v != Verdict::pass) {
              g.verdict = *v;
              g.message = s.value("message", g.message);
            }
      }
  o->kept = true;
  return o;
}

// One cell on this machine, in this process: result.json written.
CellOutcome local_cell(RunParts& run, const Cell& cell, const std::filesystem::path& cell_dir, FileLogger& cell_log,
                       const json& host_facts) {
  const Plan& plan = run.plan;
  CellOutcome o;
  // Without [hosts] (no placement), a cell that needs another kind of host
  // kernel is not runnable here.
  auto needs = cell.spec.axis("host_kernel");
  const bool host_rt = flag_or(host_facts, "preempt_rt", false);
  if (!run.hosts.placed && needs && *needs != "any" && (*needs == "rt") != host_rt) {
    std::string why = "not runnable here: the cell needs a" + std::string(*needs == "rt" ? " PREEMPT_RT" : " non-RT") +
                      " host kernel, this host runs " + text_or(host_facts, "kernel_release", "?") + " (" +
                      text_or(host_facts, "preempt_model", "?") + ")";
    cell_log.info(why);
    o = unmeasured_outcome(plan, cell, run.record.id(), CellStatus::skipped, why, "", host_facts);
  } else {
    cell_log.info("cell " + std::to_string(cell.index) + "/" + std::to_string(run.selection.cells.size()) + " " + cell.spec.id);
    try {
      o = measure_cell(MeasureCell{plan, run.registry, cell, run.record.id(), cell_dir,
                                   run.record.dir() / ".work" / cell.spec.id, cell_log, run.local_host, host_facts,
                                   [&](const std::string& phase) { run.progress.cell(static_cast<std::size_t>(cell.index), cell, phase); }});
    } catch (...) {  // the core's own failure around the cell (e.g. its directories): not a measurement
      o = unmeasured_outcome(plan, cell, run.record.id(), CellStatus::infra_error, describe_current_exception(), "setup",
                             host_facts);
    }
  }
  store_result(plan, cell, cell_dir, o, cell_log, run.err);
  return o;
}

// The outcome of a cell a remote host ran, from the result.json that came
// back; its gates are the controller's (the same plan, and baselines live
// here), evaluated on every series the cell recorded.
CellOutcome remote_outcome(RunParts& run, const Cell& cell, const std::filesystem::path& cell_dir, const std::string& failure,
                           FileLogger& cell_log) {
  std::string why;
  auto result = read_json_file(cell_dir / "result.json", &why);
  std::optional<CellOutcome> read;
  if (result && result->is_object()) {
    read = outcome_from_result(*result, &why);
    if (!read) {
      // Its data cannot be judged: kept for diagnosis, not a measurement.
      read = CellOutcome{};
      read->document = *result;
      read->status = CellStatus::infra_error;
      read->error = "the result from host " + cell.spec.host_name + " has an " + why;
    }
  }
  CellOutcome o;
  if (!read) {
    o = unmeasured_outcome(run.plan, cell, run.record.id(), CellStatus::infra_error,
                           failure.empty() ? "the cell's result did not come back from host " + cell.spec.host_name + ": " + why : failure,
                           "remote", nullptr);
  } else {
    o = std::move(*read);
    if (!failure.empty() && o.measured()) {  // the host failed after writing it
      o.status = CellStatus::infra_error;
      o.error = failure;
      o.error_phase = "remote";
    }
    // A cell that came back as something else than asked for is not this cell.
    if (read_result_head(o.document).cell_id != cell.spec.id) {
      o.status = CellStatus::infra_error;
      o.error = "host " + cell.spec.host_name + " returned the result of another cell";
    }
    o.gates = evaluate_gates(run.plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr, &o.series_merged,
                             o.document.contains("facts") ? &o.document["facts"] : nullptr, measure_phase_seconds(o.document));
  }
  if (!o.error.empty()) cell_log.error(o.error);
  store_result(run.plan, cell, cell_dir, o, cell_log, run.err);
  return o;
}

// The workers of a run, with what they share: the outcomes, the remote
// hosts' provisioning (one ansible-playbook for all of them, before the
// first cell) and ssh control sockets, each host's turns on its machine. At
// most [plan] max_parallel_hosts hosts are worked on at once, each by one
// thread from start to end; a host's ssh master goes when its worker is done.
class Workers {
 public:
  Workers(RunParts& run, std::vector<CellOutcome>& outcomes)
      : run_(run), plan_(run.plan), options_(run.selection.options), cells_(run.selection.cells),
        run_dir_(run.record.dir()), outcomes_(outcomes), turns_(run.hosts.machines) {}

  int measure() {
    outcomes_.assign(cells_.size(), CellOutcome{});
    keep_or_queue();
    if (int code = set_up_remote(); code != exit_code::pass) return code;
    // In the run's order of hosts; a host without cells needs no connection.
    std::vector<std::string> order;
    for (auto& h : run_.hosts.hosts) {
      if (queues_.count(h.spec.name)) order.push_back(h.spec.name);
      else h.master.reset();
    }
    provision(order);
    for_each_bounded(order.size(), plan_.max_parallel_hosts, [this, &order](std::size_t k) { work_on(order[k], queues_.at(order[k])); });
    clean_up();
    return exit_code::pass;
  }

 private:
  // One host's state while its worker runs.
  struct HostWork {
    HostState& host;
    std::filesystem::path dir;             // hosts/<name>: its logs
    std::unique_ptr<RemoteHost> remote;    // remote hosts only
    std::string problem;                   // every cell of the host fails with it
  };

  void keep_or_queue();
  int set_up_remote();
  void provision(const std::vector<std::string>& order);
  void work_on(const std::string& name, const std::vector<std::size_t>& queue);
  void prepare(HostWork& w);
  CellOutcome measure_into(HostWork& w, const Cell& cell, const std::filesystem::path& dir,
                           const std::function<void()>& on_teardown = {});
  std::filesystem::path ssh_log_of(const HostWork& w, const std::filesystem::path& dir) const {
    return w.dir / ("cell-" + dir.filename().string() + ".ssh.log");
  }
  MachineTurns::Turn turn_on_machine(const std::string& name) {
    return turns_.take(name, [&](const std::string& holder) { run_.progress.host(name, "waiting for " + holder + " (one machine)"); });
  }
  // run.json, the exporter hook and progress follow each cell.
  void finish_cell(std::size_t i, CellOutcome o);
  void mark_running(std::size_t i);
  void not_run(std::size_t i);
  void clean_up();

  RunParts& run_;
  const Plan& plan_;
  const RunOptions& options_;
  const std::vector<Cell>& cells_;
  const std::filesystem::path& run_dir_;
  std::vector<CellOutcome>& outcomes_;
  MachineTurns turns_;
  std::map<std::string, std::vector<std::size_t>> queues_;  // host -> cells, plan order
  RemoteRun remote_run_;
  std::optional<ProvisionSetup> provisioning_;
  std::string provisioning_problem_;  // every host to provision fails with it
  std::map<std::string, std::string> provision_failed_;  // host -> why
  std::filesystem::path socket_dir_;
};

// Kept cells of a resumed run; the others queue on their host, in plan order.
void Workers::keep_or_queue() {
  for (std::size_t i = 0; i < cells_.size(); ++i) {
    const Cell& cell = cells_[i];
    if (run_.selection.previous) {
      auto cell_dir = run_dir_ / "cells" / cell.spec.id;
      if (auto kept = kept_outcome(plan_, cell, cell_dir)) {
        outcomes_[i] = std::move(*kept);
        run_.record.finished(i, outcomes_[i], run_.err, /*kept=*/true);
        run_.progress.end_cell(static_cast<std::size_t>(cell.index), cell, outcomes_[i]);
        continue;
      }
      // Measured again: the earlier attempt is kept aside, never overwritten.
      std::error_code ec;
      if (std::filesystem::exists(cell_dir, ec)) {
        auto aside = run_dir_ / "attempts" / cell.spec.id;
        int n = 1;
        while (std::filesystem::exists(aside.string() + "." + std::to_string(n), ec)) ++n;
        std::filesystem::create_directories(aside.parent_path(), ec);
        std::filesystem::rename(cell_dir, aside.string() + "." + std::to_string(n), ec);
      }
    }
    queues_[cell.spec.host_name].push_back(i);
  }
}

// The bundle the remote hosts are provisioned with (made once), and the
// directory of the ssh control sockets.
int Workers::set_up_remote() {
  remote_run_ = RemoteRun{run_.record.id(), std::filesystem::absolute(plan_.path), run_dir_, options_.duration};
  bool provision_any = false;
  for (const auto& entry : queues_) {
    const auto& h = run_.hosts.of(entry.first).spec;
    if (!h.local() && h.provision && !options_.no_provision) provision_any = true;
  }
  if (provision_any) {
    try {
      if (!options_.bundle) run_.progress.host("controller", "making the vmlat bundle");
      provisioning_ = prepare_provisioning(options_.bundle, run_dir_ / ".work", run_dir_ / "bundle.log");
    } catch (const std::exception& e) {
      provisioning_problem_ = e.what();
    }
  }
  if (run_.hosts.any_remote(cells_)) {
    try {
      socket_dir_ = control_socket_dir(run_dir_ / ".work" / "ssh");
    } catch (const std::exception& e) {
      run_.err << "vmlat: " << e.what() << "\n";
      outcomes_.clear();
      return exit_code::infra;
    }
  }
  return exit_code::pass;
}

// Every remote host to provision, by one ansible-playbook (a wave of at most
// max_parallel_hosts hosts, no two of one machine), before the first cell.
// A host that fails it fails its own cells (prepare()); the others measure.
void Workers::provision(const std::vector<std::string>& order) {
  std::vector<HostState*> hosts;
  for (const auto& name : order) {
    HostState& h = run_.hosts.of(name);
    if (h.spec.local() || !h.spec.provision || options_.no_provision || !h.reachable) continue;
    if (!provisioning_) provision_failed_[name] = "cannot provision " + name + ": " + provisioning_problem_;
    else hosts.push_back(&h);
  }
  if (hosts.empty()) return;
  ProvisionSetup setup = *provisioning_;
  setup.inventory = run_.record.inventory();
  setup.scratch = run_dir_ / ".work" / "provision";
  setup.socket_dir = socket_dir_;
  setup.max_parallel = plan_.max_parallel_hosts;
  ProvisionLogs logs{[&](const std::string& host) { return run_dir_ / "hosts" / host / "provision.log"; },
                     [&](std::size_t wave) { return run_dir_ / (wave == 0 ? "provision.log" : "provision-" + std::to_string(wave + 1) + ".log"); },
                     [&](const std::filesystem::path& p) { return std::filesystem::relative(p, run_dir_).string(); }};
  ProvisionEvents events{
      [&](const std::vector<std::string>& wave, const std::vector<std::string>& argv) {
        std::string line, names;
        for (const auto& word : argv) line += (line.empty() ? "" : " ") + word;
        for (const auto& name : wave) {
          names += (names.empty() ? "" : ", ") + name;
          run_.progress.host(name, "provisioning");
        }
        run_.run_log.info("provisioning " + std::to_string(wave.size()) + " host(s) (" + names + ") with one ansible-playbook: " + line);
      },
      [&](const std::string& host, const std::string& failure) {
        if (!failure.empty()) run_.run_log.error("host " + host + ": " + failure);
        run_.progress.host(host, failure.empty() ? "provisioned" : "failed");
      }};
  try {
    auto failed = provision_hosts_in_waves(setup, hosts, run_.hosts.machines, logs, events);
    provision_failed_.insert(failed.begin(), failed.end());
  } catch (const Cancelled&) {
    for (auto* h : hosts) provision_failed_.emplace(h->spec.name, "interrupted while provisioning host " + h->spec.name);
  } catch (const std::exception& e) {
    for (auto* h : hosts) provision_failed_.emplace(h->spec.name, "provisioning " + h->spec.name + " failed: " + one_line(e.what()));
  }
}

void Workers::finish_cell(std::size_t i, CellOutcome o) {
  std::lock_guard lock(run_.record.mutex());
  outcomes_[i] = std::move(o);
  run_.record.finished(i, outcomes_[i], run_.err);
  if (options_.on_cell_done && outcomes_[i].has_result())
    options_.on_cell_done(run_.record.run(), result_json(outcomes_[i]), run_dir_);
  run_.progress.end_cell(static_cast<std::size_t>(cells_[i].index), cells_[i], outcomes_[i]);
}

void Workers::mark_running(std::size_t i) {
  std::lock_guard lock(run_.record.mutex());
  run_.record.running(i, run_.err);
}

void Workers::not_run(std::size_t i) {
  std::lock_guard lock(run_.record.mutex());
  outcomes_[i].status = CellStatus::not_run;
  outcomes_[i].error = "the run was interrupted before this cell";
  run_.record.not_run(i);
}

// A remote host is connected and given the plan before its first cell (it
// was provisioned before any); what fails makes every cell of the host an
// infrastructure error.
void Workers::prepare(HostWork& w) {
  if (w.host.spec.local()) return;
  const std::string& name = w.host.spec.name;
  std::error_code ec;
  std::filesystem::create_directories(w.dir, ec);
  w.remote = std::make_unique<RemoteHost>(w.host.spec, remote_run_, run_dir_ / ".work" / "hosts" / name, socket_dir_,
                                          w.host.master);
  try {
    if (!w.host.reachable) throw InfraError(w.host.unreachable);
    if (auto failed = provision_failed_.find(name); failed != provision_failed_.end()) throw InfraError(failed->second);
    run_.progress.host(name, "connecting");
    w.remote->connect();
    w.remote->upload_plan();
  } catch (const Cancelled&) {
    w.problem = "interrupted while preparing host " + name;
  } catch (const std::exception& e) {
    w.problem = one_line(e.what());
  }
  if (!w.problem.empty()) {
    run_.progress.host(name, "failed");
    run_.run_log.error("host " + name + ": " + w.problem);
  }
}

// One measurement of a cell into `dir`: cells/<id>, or attempts/<id>.retest<k>.
CellOutcome Workers::measure_into(HostWork& w, const Cell& cell, const std::filesystem::path& dir,
                                  const std::function<void()>& on_teardown) {
  const std::string& name = w.host.spec.name;
  std::error_code dir_error;
  std::filesystem::create_directories(dir, dir_error);
  FileLogger cell_log(dir / "cell.log", &run_.run_log, cell.spec.id);
  if (w.host.spec.local()) return local_cell(run_, cell, dir, cell_log, w.host.facts);
  if (!w.problem.empty()) {
    auto o = unmeasured_outcome(plan_, cell, run_.record.id(), CellStatus::infra_error, "host " + name + ": " + w.problem,
                                "host", w.host.facts);
    cell_log.error(o.error + (std::filesystem::exists(w.dir / "provision.log") ? " (see hosts/" + name + "/provision.log)" : ""));
    store_result(plan_, cell, dir, o, cell_log, run_.err);
    return o;
  }
  std::string failure;
  run_.progress.cell(static_cast<std::size_t>(cell.index), cell, "remote");
  auto ssh_log = ssh_log_of(w, dir);
  try {
    int code = w.remote->run_cell(
        cell.spec.id, cell.index, ssh_log,
        [&](const std::string& phase) { run_.progress.cell(static_cast<std::size_t>(cell.index), cell, phase); }, dir,
        on_teardown);
    if (code == exit_code::usage)
      failure = "vmlat on host " + name + " refused the cell (exit 2): see hosts/" + name + "/" + ssh_log.filename().string();
  } catch (const std::exception& e) {
    failure = one_line(e.what());
  }
  // The cell log that came back replaces ours; add what the controller saw.
  FileLogger back(dir / "cell.log", nullptr, "controller");
  if (!failure.empty()) back.error(failure);
  return remote_outcome(run_, cell, dir, failure, back);
}

// A host's worker: its cells one at a time in plan order (in turns with the
// other hosts of its machine), each retested when a gate failed.
void Workers::work_on(const std::string& name, const std::vector<std::size_t>& queue) {
  HostWork w{run_.hosts.of(name), run_dir_ / "hosts" / name, nullptr, {}};
  {
    auto preparing = turn_on_machine(name);
    prepare(w);
  }
  for (std::size_t k = 0; k < queue.size(); ++k) {
    const std::size_t i = queue[k];
    const Cell& cell = cells_[i];
    auto turn = turn_on_machine(name);
    if (cancel_requested()) {
      not_run(i);
      continue;
    }
    run_.progress.begin_cell(name);
    mark_running(i);
    auto cell_dir = run_dir_ / "cells" / cell.spec.id;
    // While this cell tears down, the next one's remote vmlat starts
    // (RemoteHost::prespawn); it waits for "go" before touching the host.
    std::function<void()> prespawn_next;
    if (w.remote && w.problem.empty() && k + 1 < queue.size())
      prespawn_next = [&, next = &cells_[queue[k + 1]]] {
        if (!cancel_requested())
          w.remote->prespawn(next->spec.id, next->index, ssh_log_of(w, run_dir_ / "cells" / next->spec.id));
      };
    CellOutcome o = measure_into(w, cell, cell_dir, prespawn_next);
    retest_failures(plan_, cell, o, cell_dir, run_dir_, [&](const std::filesystem::path& dir) { return measure_into(w, cell, dir); },
                    run_.err);
    finish_cell(i, std::move(o));
  }
  if (w.remote) {
    auto turn = turn_on_machine(name);
    run_.progress.host(name, "cleaning up");
    w.remote->cleanup();
    w.remote.reset();
  }
  // Its connection goes with it: the next host's worker opens its own.
  w.host.master.reset();
  run_.progress.host(name, w.problem.empty() ? "done" : "failed");
}

void Workers::clean_up() {
  std::error_code ec;
  if (!socket_dir_.empty() && socket_dir_.string().rfind("/tmp/vmlat-ssh-", 0) == 0) std::filesystem::remove_all(socket_dir_, ec);
  // The bundle is made again from the build whenever needed; the remote
  // sessions' scratch only matters while they run (their logs are in hosts/).
  if (provisioning_ && !options_.bundle) std::filesystem::remove(provisioning_->bundle, ec);
  std::filesystem::remove_all(run_dir_ / ".work" / "provision", ec);
  std::filesystem::remove_all(run_dir_ / ".work" / "hosts", ec);
  remove_empty_dirs(run_dir_ / ".work");
}

}  // namespace

int measure_cells(RunParts& run, std::vector<CellOutcome>& outcomes) {
  Workers workers(run, outcomes);
  return workers.measure();
}

}  // namespace vmlat
