#include "run/workers.hpp"

#include <map>
#include <mutex>
#include <ostream>
#include <thread>

#include "cell/measure.hpp"
#include "cell/store.hpp"
#include "gates/evaluate.hpp"
#include "remote.hpp"
#include "run/retest.hpp"
#include "run/summary.hpp"
#include "ssh.hpp"
#include "vmlat/errors.hpp"
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
  o->gates = evaluate_gates(plan, cell.spec, o->status, o->error, o->merged ? &*o->merged : nullptr, &o->series_merged);
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
    o.gates = evaluate_gates(run.plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr, &o.series_merged);
  }
  if (!o.error.empty()) cell_log.error(o.error);
  store_result(run.plan, cell, cell_dir, o, cell_log, run.err);
  return o;
}

// What the remote hosts of the run share: the bundle they are provisioned
// with (made once), Ansible's directory, the ssh control sockets.
struct RemoteSetup {
  RemoteRun remote_run;
  std::string provisioning_problem;  // every host to provision fails with it
  std::filesystem::path socket_dir;
};

}  // namespace

int measure_cells(RunParts& run, std::vector<CellOutcome>& outcomes) {
  const Plan& plan = run.plan;
  const RunOptions& options = run.selection.options;
  const std::vector<Cell>& cells = run.selection.cells;
  const std::filesystem::path& run_dir = run.record.dir();
  outcomes.assign(cells.size(), CellOutcome{});

  // Kept cells of a resumed run; the others queue on their host, in plan order.
  std::map<std::string, std::vector<std::size_t>> queues;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const Cell& cell = cells[i];
    if (run.selection.previous) {
      auto cell_dir = run_dir / "cells" / cell.spec.id;
      if (auto kept = kept_outcome(plan, cell, cell_dir)) {
        outcomes[i] = std::move(*kept);
        run.record.finished(i, outcomes[i], run.err, /*kept=*/true);
        run.progress.end_cell(static_cast<std::size_t>(cell.index), cell, outcomes[i]);
        continue;
      }
      // Measured again: the earlier attempt is kept aside, never overwritten.
      std::error_code ec;
      if (std::filesystem::exists(cell_dir, ec)) {
        auto aside = run_dir / "attempts" / cell.spec.id;
        int n = 1;
        while (std::filesystem::exists(aside.string() + "." + std::to_string(n), ec)) ++n;
        std::filesystem::create_directories(aside.parent_path(), ec);
        std::filesystem::rename(cell_dir, aside.string() + "." + std::to_string(n), ec);
      }
    }
    queues[cell.spec.host_name].push_back(i);
  }

  // The bundle the remote hosts are provisioned with, made once.
  RemoteSetup remote{RemoteRun{run.record.id(), std::filesystem::absolute(plan.path), run_dir, run.record.inventory(), {}, {},
                               options.duration},
                     {},
                     {}};
  bool provision_any = false;
  for (const auto& [name, queue] : queues) {
    const auto& h = run.hosts.of(name).spec;
    if (!h.local() && h.provision && !options.no_provision) provision_any = true;
  }
  if (provision_any) {
    if (auto dir = find_ansible_dir()) remote.remote_run.ansible_dir = *dir;
    else remote.provisioning_problem = "cannot find vmlat's ansible/ (provision.yml) beside this vmlat";
    if (remote.provisioning_problem.empty()) {
      try {
        if (options.bundle) {
          remote.remote_run.bundle = std::filesystem::absolute(*options.bundle);
        } else {
          std::filesystem::create_directories(run_dir / ".work");
          remote.remote_run.bundle = run_dir / ".work" / "vmlat-bundle.tar.gz";
          run.progress.host("controller", "making the vmlat bundle");
          make_bundle(remote.remote_run.ansible_dir, remote.remote_run.bundle, run_dir / "bundle.log");
        }
      } catch (const std::exception& e) {
        remote.provisioning_problem = e.what();
      }
    }
  }
  if (run.hosts.any_remote(cells)) {
    try {
      remote.socket_dir = control_socket_dir(run_dir / ".work" / "ssh");
    } catch (const std::exception& e) {
      run.err << "vmlat: " << e.what() << "\n";
      outcomes.clear();
      return exit_code::infra;
    }
  }

  // Records a finished cell: run.json, exporters, progress.
  auto finish_cell = [&](std::size_t i, CellOutcome o) {
    std::lock_guard lock(run.record.mutex());
    outcomes[i] = std::move(o);
    run.record.finished(i, outcomes[i], run.err);
    if (options.on_cell_done && outcomes[i].has_result())
      options.on_cell_done(run.record.run(), result_json(outcomes[i]), run_dir);
    run.progress.end_cell(static_cast<std::size_t>(cells[i].index), cells[i], outcomes[i]);
  };
  auto mark_running = [&](std::size_t i) {
    std::lock_guard lock(run.record.mutex());
    run.record.running(i, run.err);
  };
  auto not_run = [&](std::size_t i) {
    std::lock_guard lock(run.record.mutex());
    outcomes[i].status = CellStatus::not_run;
    outcomes[i].error = "the run was interrupted before this cell";
    run.record.not_run(i);
  };

  // One worker per host: hosts in parallel, one cell at a time on each, and
  // hosts that are one machine in turns (preparing, a cell with its
  // retests, cleaning up).
  MachineTurns turns(run.hosts.machines);
  auto turn_on_machine = [&](const std::string& name) {
    return turns.take(name, [&](const std::string& holder) { run.progress.host(name, "waiting for " + holder + " (one machine)"); });
  };
  auto work_on = [&](const std::string& name, const std::vector<std::size_t>& queue) {
    HostState& h = run.hosts.of(name);
    auto preparing = turn_on_machine(name);
    auto host_dir = run_dir / "hosts" / name;
    std::unique_ptr<RemoteHost> remote_host;
    std::string host_problem;  // every cell of the host fails with it
    if (!h.spec.local()) {
      std::error_code ec;
      std::filesystem::create_directories(host_dir, ec);
      remote_host = std::make_unique<RemoteHost>(h.spec, remote.remote_run, run_dir / ".work" / "hosts" / name,
                                                 remote.socket_dir, h.master);
      try {
        if (!h.reachable) throw InfraError(h.unreachable);
        run.progress.host(name, "connecting");
        remote_host->connect();
        if (h.spec.provision && !options.no_provision) {
          if (!remote.provisioning_problem.empty()) throw InfraError("cannot provision " + name + ": " + remote.provisioning_problem);
          run.progress.host(name, "provisioning");
          run.run_log.info("provisioning host " + name + " (ansible-playbook provision.yml --limit " + name + ")");
          remote_host->provision(host_dir / "provision.log");
        }
        remote_host->upload_plan();
      } catch (const Cancelled&) {
        host_problem = "interrupted while preparing host " + name;
      } catch (const std::exception& e) {
        host_problem = one_line(e.what());
      }
      if (!host_problem.empty()) {
        run.progress.host(name, "failed");
        run.run_log.error("host " + name + ": " + host_problem);
      }
    }
    preparing.release();
    // One measurement of a cell into `dir`: cells/<id>, or attempts/<id>.retest<k>.
    auto ssh_log_of = [&](const std::filesystem::path& dir) { return host_dir / ("cell-" + dir.filename().string() + ".ssh.log"); };
    auto measure_into = [&](const Cell& cell, const std::filesystem::path& dir,
                            const std::function<void()>& on_teardown = {}) -> CellOutcome {
      std::error_code dir_error;
      std::filesystem::create_directories(dir, dir_error);
      FileLogger cell_log(dir / "cell.log", &run.run_log, cell.spec.id);
      if (h.spec.local()) return local_cell(run, cell, dir, cell_log, h.facts);
      if (!host_problem.empty()) {
        auto o = unmeasured_outcome(plan, cell, run.record.id(), CellStatus::infra_error, "host " + name + ": " + host_problem,
                                    "host", h.facts);
        cell_log.error(o.error + (std::filesystem::exists(host_dir / "provision.log") ? " (see hosts/" + name + "/provision.log)" : ""));
        store_result(plan, cell, dir, o, cell_log, run.err);
        return o;
      }
      std::string failure;
      run.progress.cell(static_cast<std::size_t>(cell.index), cell, "remote");
      auto ssh_log = ssh_log_of(dir);
      try {
        int code = remote_host->run_cell(
            cell.spec.id, cell.index, ssh_log,
            [&](const std::string& phase) { run.progress.cell(static_cast<std::size_t>(cell.index), cell, phase); }, dir,
            on_teardown);
        if (code == exit_code::usage)
          failure = "vmlat on host " + name + " refused the cell (exit 2): see hosts/" + name + "/" + ssh_log.filename().string();
      } catch (const std::exception& e) {
        failure = one_line(e.what());
      }
      // The cell log that came back replaces ours; add what the controller saw.
      FileLogger back(dir / "cell.log", nullptr, "controller");
      if (!failure.empty()) back.error(failure);
      return remote_outcome(run, cell, dir, failure, back);
    };
    for (std::size_t k = 0; k < queue.size(); ++k) {
      const std::size_t i = queue[k];
      const Cell& cell = cells[i];
      auto turn = turn_on_machine(name);
      if (cancel_requested()) {
        not_run(i);
        continue;
      }
      run.progress.begin_cell(name);
      mark_running(i);
      auto cell_dir = run_dir / "cells" / cell.spec.id;
      // While this cell tears down, the next one's remote vmlat starts
      // (RemoteHost::prespawn); it waits for "go" before touching the host.
      std::function<void()> prespawn_next;
      if (remote_host && host_problem.empty() && k + 1 < queue.size())
        prespawn_next = [&, next = &cells[queue[k + 1]]] {
          if (!cancel_requested())
            remote_host->prespawn(next->spec.id, next->index, ssh_log_of(run_dir / "cells" / next->spec.id));
        };
      CellOutcome o = measure_into(cell, cell_dir, prespawn_next);
      retest_failures(plan, cell, o, cell_dir, run_dir, [&](const std::filesystem::path& dir) { return measure_into(cell, dir); },
                      run.err);
      finish_cell(i, std::move(o));
    }
    if (remote_host) {
      auto turn = turn_on_machine(name);
      run.progress.host(name, "cleaning up");
      remote_host->cleanup();
    }
    run.progress.host(name, host_problem.empty() ? "done" : "failed");
  };
  {
    std::vector<std::thread> workers;
    for (const auto& [name, queue] : queues) workers.emplace_back(work_on, name, queue);
    for (auto& w : workers) w.join();
  }

  std::error_code ec;
  if (!remote.socket_dir.empty() && remote.socket_dir.string().rfind("/tmp/vmlat-ssh-", 0) == 0)
    std::filesystem::remove_all(remote.socket_dir, ec);
  // The bundle is made again from the build whenever needed; the remote
  // sessions' scratch only matters while they run (their logs are in hosts/).
  if (!remote.remote_run.bundle.empty() && !options.bundle) std::filesystem::remove(remote.remote_run.bundle, ec);
  std::filesystem::remove_all(run_dir / ".work" / "hosts", ec);
  remove_empty_dirs(run_dir / ".work");
  return exit_code::pass;
}

}  // namespace vmlat
