#include "run/run_record.hpp"

#include <unistd.h>

#include <ostream>

#include "cell_support.hpp"
#include "run/summary.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

namespace {



}  // namespace

json RunRecord::holder(const char* what) const {
  return json{{"what", what}, {"run_id", id_}, {"plan", plan_.name}, {"pid", static_cast<long long>(::getpid())},
              {"since", iso_now()}, {"run_dir", dir_.string()}};
}

std::filesystem::path RunRecord::shown_dir() const {
  return show_relative_ ? dir_.lexically_proximate(std::filesystem::current_path()) : dir_;
}

int RunRecord::open(RunHosts& hosts, std::ostream& err) {
  const RunOptions& options = selection_.options;
  root_ = options.results_root ? *options.results_root : std::filesystem::path(plan_.results_dir);
  // Shown as given (relative to the working directory when it was), used
  // absolute: the run directory's paths go to child processes (ansible,
  // QEMU, tar) that may run elsewhere.
  show_relative_ = (options.resume_dir ? *options.resume_dir : root_).is_relative();
  root_ = std::filesystem::absolute(root_);
  id_ = compact_utc() + "-" + plan_.name;
  dir_ = root_ / id_;
  // The run directory's lock: a run being resumed must not be running.
  if (selection_.previous) {
    const json& previous = *selection_.previous;
    dir_ = std::filesystem::absolute(*options.resume_dir).lexically_normal();
    if (dir_.filename().empty()) dir_ = dir_.parent_path();  // "results/<run>/"
    root_ = dir_.parent_path();
    id_ = previous.value("run_id", dir_.filename().string());
    try {
      run_lock_ = FileLock::try_lock(run_lock_path(dir_), holder("run"));
    } catch (const std::exception& e) {
      err << "vmlat: --resume: " << e.what() << "\n";
      return exit_code::infra;
    }
    if (!run_lock_) {
      err << "vmlat: --resume: run " << id_ << " is in progress: " << describe_holder(FileLock::holder(run_lock_path(dir_)))
          << " holds it; wait for it to finish (or stop it) before resuming it\n";
      return exit_code::usage;
    }
    if (previous.value("status", "") == "running")
      err << "vmlat: run " << id_ << " was abandoned (its vmlat, pid " << previous.value("pid", 0LL)
          << ", stopped without finishing: killed?); resuming it\n";
  }
  // One measurement per host at a time: wait for (or, --no-wait, give up
  // on) whoever measures here now. Remote hosts take their own.
  if (hosts.any_local(selection_.cells)) {
    HostLockFailure lock_failure;
    host_lock_ = acquire_host_lock(options.lock_dir, options.no_wait, holder("run"), err, &lock_failure);
    if (!host_lock_) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;
  }
  if (!selection_.previous) {
    // A fresh directory, atomically: two runs started in the same second
    // never share one.
    try {
      std::filesystem::create_directories(root_);
      const std::string base = id_;
      for (int n = 2; !std::filesystem::create_directory(dir_); ++n) dir_ = root_ / (base + "-" + std::to_string(n));
      id_ = dir_.filename().string();
      run_lock_ = FileLock::try_lock(run_lock_path(dir_), holder("run"));
    } catch (const std::exception& e) {
      err << "vmlat: cannot create the results directory " << dir_ << ": " << e.what() << "\n";
      return exit_code::infra;
    }
  }
  try {
    std::filesystem::create_directories(dir_ / "cells");
  } catch (const std::exception& e) {
    err << "vmlat: cannot create the results directory " << dir_ << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  return exit_code::pass;
}

int RunRecord::begin(const RunHosts& hosts, std::ostream& err) {
  const RunOptions& options = selection_.options;
  // The inventory of this run, for Ansible (the user's own, when given).
  inventory_ = options.inventory ? std::filesystem::absolute(*options.inventory) : dir_ / "inventory.json";
  if (hosts.placed && !options.inventory) {
    try {
      write_file_atomic(inventory_, dump_json(inventory_for(hosts.specs), 2) + "\n");
    } catch (const std::exception& e) {
      err << "vmlat: cannot write " << inventory_.string() << ": " << e.what() << "\n";
      return exit_code::infra;
    }
  }
  json hosts_json = json::object();
  for (const auto& h : hosts.hosts) {
    json j = h.facts.is_object() ? h.facts : json::object();
    if (hosts.placed) {
      j["vmlat_host"] = json{{"address", h.spec.local() ? json("local") : json(h.spec.address)},
                             {"port", h.spec.port ? json(h.spec.port) : json(nullptr)},
                             {"user", h.spec.user.empty() ? json(nullptr) : json(h.spec.user)},
                             {"tags", h.spec.tags},
                             {"reachable", h.reachable}};
      if (!h.reachable) j["vmlat_host"]["error"] = one_line(h.unreachable);
      j["vmlat_host"]["same_machine_as"] = same_machine_as(hosts.machines, h.spec.name);
    }
    hosts_json[h.spec.name] = j;
  }
  json command_line = options.command_line;
  json cells_json = json::array();
  for (const auto& c : selection_.cells)
    cells_json.push_back(json{{"id", c.spec.id}, {"index", c.index}, {"axes", axes_json(c.spec)}, {"host", c.spec.host_name},
                              {"status", "pending"}, {"dir", "cells/" + c.spec.id}});
  json run_options = json::object();
  if (!options.only.empty()) {
    json only = json::array();
    for (const auto& [k, v] : options.only) only.push_back({k, v});
    run_options["only"] = only;
  }
  if (options.duration) run_options["duration_ns"] = options.duration->count();
  if (options.inventory) run_options["inventory"] = inventory_.string();
  if (!options.host_share.empty()) run_options["hosts"] = options.host_share;
  if (!options.this_host.empty()) run_options["this_host"] = options.this_host;
  if (selection_.previous) {
    run_ = *selection_.previous;
    run_["status"] = "running";
    run_["pid"] = static_cast<long long>(::getpid());
    run_["finished"] = nullptr;
    run_["exit_code"] = nullptr;
    for (auto it = hosts_json.begin(); it != hosts_json.end(); ++it) run_["hosts"][it.key()] = it.value();
    if (!run_.contains("resumed")) run_["resumed"] = json::array();
    run_["resumed"].push_back(json{{"at", iso_now()}, {"command_line", command_line}, {"vmlat_version", version_string}});
    run_["cells"] = cells_json;  // statuses filled in as the cells end, kept cells first
  } else {
    run_ = json{{"schema", "vmlat-run/1"},
                {"run_id", id_},
                {"vmlat_version", version_string},
                {"plugin_abi", abi_version},
                {"command_line", command_line},
                {"options", run_options},
                {"plan", {{"name", plan_.name}, {"path", plan_.path.string()}, {"sha256", plan_.sha256}, {"description", plan_.description}, {"text", plan_.text}}},
                {"started", iso_now()},
                {"pid", static_cast<long long>(::getpid())},
                {"finished", nullptr},
                {"status", "running"},
                {"exit_code", nullptr},
                {"hosts", hosts_json},
                {"cells", cells_json},
                {"summary", nullptr}};
  }
  // The plan's figures, for `vmlat report` (which reads runs, not plans).
  if (plan_.report.declared) run_["report"] = report_spec_json(plan_.report);
  // A fan-out job's share: the list of every cell of the plan goes to a file
  // of its own, written once (run.json is rewritten after every cell).
  if (!hosts.share.is_null() && !selection_.previous) {
    json head = hosts.share;
    head.erase("cells");
    head["plan_cells"] = hosts.share["cells"].size();
    head["file"] = "share.json";
    run_["share"] = head;
    try {
      write_file_atomic(dir_ / "share.json", dump_json(json{{"schema", "vmlat-share/1"}, {"plan_sha256", plan_.sha256},
                                                            {"cells", hosts.share["cells"]}}, 1) + "\n");
    } catch (const std::exception& e) {
      err << "vmlat: cannot write " << (dir_ / "share.json").string() << ": " << e.what() << "\n";
      return exit_code::infra;
    }
  }
  try {
    write_file_atomic(dir_ / "run.json", dump_json(run_, 2) + "\n");
  } catch (const std::exception& e) {
    err << "vmlat: cannot write " << (dir_ / "run.json").string() << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  return exit_code::pass;
}

// During a run: a run.json that cannot be rewritten (disk full) keeps its
// previous content, which never says more than was true (a cell "running",
// never "measured" before its result.json exists); the run goes on.
bool RunRecord::write_or_warn(std::ostream& err) {
  try {
    write_file_atomic(dir_ / "run.json", dump_json(run_, 2) + "\n");
    return true;
  } catch (const std::exception& e) {
    err << "vmlat: cannot update " << (dir_ / "run.json").string() << ": " << e.what() << "\n";
    return false;
  }
}

void RunRecord::running(std::size_t i, std::ostream& err) {
  run_["cells"][i]["status"] = "running";
  write_or_warn(err);
}

void RunRecord::finished(std::size_t i, const CellOutcome& outcome, std::ostream& err, bool kept) {
  record_in_run(run_["cells"][i], outcome);
  if (kept) {
    run_["cells"][i]["kept"] = true;
    return;  // written with the next change
  }
  write_or_warn(err);
}

void RunRecord::not_run(std::size_t i) { run_["cells"][i]["status"] = status_name(CellStatus::not_run); }

bool RunRecord::close(int exit_code, const json& summary, bool interrupted, std::ostream& err) {
  run_["finished"] = iso_now();
  run_["status"] = interrupted ? "interrupted" : "complete";
  run_["exit_code"] = exit_code;
  run_["summary"] = summary;
  return write_or_warn(err);
}

void RunRecord::set_exit_code(int exit_code, std::ostream& err) {
  run_["exit_code"] = exit_code;
  write_or_warn(err);
}

void RunRecord::link_latest() {
  std::error_code ec;
  auto latest = root_ / "latest";
  std::filesystem::remove(latest, ec);
  std::filesystem::create_directory_symlink(id_, latest, ec);
}

}  // namespace vmlat
