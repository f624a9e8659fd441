// Stage 3 of a run: its record on disk. The host lock (when this machine
// measures), the run directory (fresh, or the resumed one) and its lock,
// run.json written after every change, the run's own inventory, and at the
// end the `latest` link. docs/results-format.md describes the files.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cell/outcome.hpp"
#include "locks.hpp"
#include "run/run_hosts.hpp"
#include "run/selection.hpp"

namespace vmlat {

class RunRecord {
 public:
  RunRecord(const Plan& plan, const Selection& selection) : plan_(plan), selection_(selection) {}

  // Takes the locks (the host lock when a cell runs on this machine) and
  // makes (or reopens) the run directory. exit_code::pass, or the exit code
  // after saying why on `err`.
  int open(RunHosts& hosts, std::ostream& err);
  // Writes the run's inventory (for Ansible) and the first run.json, with
  // every host's facts. exit_code::pass or infra.
  int begin(const RunHosts& hosts, std::ostream& err);

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& id() const { return id_; }
  const std::filesystem::path& inventory() const { return inventory_; }
  // The run directory as the user gave it: relative when they did.
  std::filesystem::path shown_dir() const;

  // Cell i (0-based): its entry in run.json. Each call rewrites run.json
  // (a failed write is said on `err` and the run goes on).
  void running(std::size_t i, std::ostream& err);
  void finished(std::size_t i, const CellOutcome& outcome, std::ostream& err, bool kept = false);
  void not_run(std::size_t i);
  // The final state; false when run.json could not be written.
  bool close(int exit_code, const json& summary, bool interrupted, std::ostream& err);
  // run.json's "expects" (the plan's claims judged), written by close().
  void set_expects(json expects) { run_["expects"] = std::move(expects); }
  // Sets the exit code again (an export failed after close()).
  void set_exit_code(int exit_code, std::ostream& err);
  // Points <results>/latest at this run.
  void link_latest();

  const json& run() const { return run_; }
  std::mutex& mutex() { return mutex_; }  // run.json and the exporter hooks

 private:
  bool write_or_warn(std::ostream& err);
  json holder(const char* what) const;

  const Plan& plan_;
  const Selection& selection_;
  std::filesystem::path root_, dir_, inventory_;
  std::string id_;
  bool show_relative_ = false;
  std::optional<FileLock> host_lock_, run_lock_;
  json run_;
  std::mutex mutex_;
};

}  // namespace vmlat
