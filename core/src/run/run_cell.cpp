// `vmlat run-cell`: one cell of a run, measured on this machine for the
// controller that started it over ssh (core/src/remote.cpp), as a local run
// measures it (cell/measure.hpp).
#include <unistd.h>

#include <cerrno>
#include <ostream>
#include <sstream>
#include <thread>

#include "cell/measure.hpp"
#include "cell/store.hpp"
#include "facts.hpp"
#include "locks.hpp"
#include "run/progress.hpp"
#include "run/run.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/local.hpp"
#include "vmlat/process.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

int run_single_cell(const Plan& plan, PluginRegistry& registry, const CellRunOptions& options, std::ostream& out,
                    std::ostream& err) {
  install_cancel_handlers();
  const std::string mine = std::string(version_string) + "/" + std::to_string(abi_version);
  if (!options.expect_version.empty() && options.expect_version != mine) {
    err << "vmlat run-cell: the controller runs vmlat " << options.expect_version << ", this host has " << mine
        << ": provision the host again (vmlat provision PLAN) so that both run the same build\n";
    return exit_code::usage;
  }
  auto cells = expand(plan);
  auto it = std::find_if(cells.begin(), cells.end(), [&](const Cell& c) { return c.spec.id == options.cell_id; });
  if (it == cells.end()) {
    err << "vmlat run-cell: plan " << plan.name << " has no cell '" << options.cell_id << "'\n";
    return exit_code::usage;
  }
  if (options.wait_go) {
    // Started early (the previous cell is still tearing down): nothing is
    // touched before the controller says "go". Byte by byte, so that no
    // byte after the line is taken from the cancel reader below.
    std::string line;
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(0, &c, 1);
      if (n < 0 && errno == EINTR) {
        if (cancel_requested()) return exit_code::interrupted;
        continue;
      }
      if (n <= 0) return exit_code::interrupted;  // EOF: not wanted after all
      if (c == '\n') break;
      if (line.size() < 16) line += c;
    }
    if (line != "go") {
      err << "vmlat run-cell: --wait-go: expected \"go\" on stdin, got \"" << line << "\"\n";
      return exit_code::usage;
    }
  }
  if (options.cancel_on_eof) {
    // The controller keeps our stdin open for the whole cell: EOF means it
    // wants the cell stopped, or it is gone.
    std::thread([] {
      char buf[256];
      while (true) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      request_cancel();
    }).detach();
  }
  Cell cell = *it;
  cell.index = options.index;
  cell.spec.host_name = options.host_name.empty() ? cell.spec.host_name : options.host_name;
  if (options.duration) cell.spec.duration = *options.duration;

  json who{{"what", "cell"}, {"run_id", options.run_id + "/" + cell.spec.id}, {"plan", plan.name},
           {"pid", static_cast<long long>(::getpid())}, {"since", iso_now()}};
  HostLockFailure lock_failure;
  std::ostringstream lock_messages;
  auto host_lock = acquire_host_lock(options.lock_dir, false, who, lock_messages, &lock_failure);
  if (!lock_messages.str().empty()) err << lock_messages.str();
  if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;

  auto cell_dir = options.out_dir / "cells" / cell.spec.id;
  try {
    std::filesystem::create_directories(cell_dir);
  } catch (const std::exception& e) {
    err << "vmlat run-cell: cannot create " << cell_dir.string() << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  FileLogger run_log(options.out_dir / "run.log", nullptr, "");
  FileLogger cell_log(cell_dir / "cell.log", &run_log, cell.spec.id);
  auto host = make_local_executor(options.out_dir / ".work" / cell.spec.id / "host", "host");
  json host_facts;
  try {
    host_facts = collect_system_facts(*host);
  } catch (const std::exception& e) {
    host_facts = json{{"error", e.what()}};
  }
  // The phases go to the controller as events on stdout.
  Progress progress(false, out, 1, cell.spec.duration, /*events=*/true);
  cell_log.info("cell " + std::to_string(cell.index) + " " + cell.spec.id);
  CellOutcome o;
  try {
    o = measure_cell(MeasureCell{plan, registry, cell, options.run_id, cell_dir, options.out_dir / ".work" / cell.spec.id,
                                 cell_log, *host, host_facts,
                                 [&](const std::string& phase) { progress.cell(static_cast<std::size_t>(cell.index), cell, phase); }});
  } catch (...) {  // the core's own failure around the cell: not a measurement
    o = unmeasured_outcome(plan, cell, options.run_id, CellStatus::infra_error, describe_current_exception(), "setup", host_facts);
  }
  store_result(plan, cell, cell_dir, o, cell_log, err);
  remove_empty_dirs(options.out_dir / ".work");
  kill_all_children();
  if (options.send_back) {
    out << "vmlat-archive v1\n" << std::flush;
    try {
      // tar writes to our own stdout (the controller's ssh channel).
      auto tar = Process::spawn(ProcessSpec{{"tar", "-C", (options.out_dir / "cells").string(), "-cf", "-", "--", cell.spec.id},
                                            {}, "/proc/self/fd/1", options.out_dir / "send-back.err", {}});
      auto status = tar.wait(Clock::now() + std::chrono::minutes(5), false);
      if (!status.success()) err << "vmlat run-cell: tar of the cell directory failed: " << status.describe() << "\n";
    } catch (const std::exception& e) {
      err << "vmlat run-cell: cannot send the cell back: " << e.what() << "\n";
    }
  }
  if (cancel_requested()) return exit_code::interrupted;
  for (const auto& g : o.gates)
    if (g.verdict == Verdict::fail) return exit_code::gate_failed;
  return o.status == CellStatus::measured || o.status == CellStatus::skipped ? exit_code::pass : exit_code::infra;
}

}  // namespace vmlat
