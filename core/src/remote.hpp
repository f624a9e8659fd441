// Cells on a remote host (docs/ARCHITECTURE.md, "Hosts"): once the host is
// provisioned (provision.hpp), the controller copies the plan there, and
// for each cell runs `vmlat run-cell` on the host over ssh — every backend,
// workload and probe then runs there locally, without knowing it is
// remote — and copies the cell directory back into the run directory. Its
// stdin stays open for the whole cell: closing it (Ctrl-C on the
// controller, or the controller dying) makes the remote vmlat stop the cell,
// tear it down and write what it measured.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hosts.hpp"
#include "ssh.hpp"
#include "vmlat/process.hpp"

namespace vmlat {

struct RemoteRun {
  std::string run_id;
  std::filesystem::path plan_file;    // the plan, as read by the controller
  std::filesystem::path run_dir;      // on this machine
  std::optional<std::chrono::nanoseconds> duration;  // --duration
};

// One host's session for the whole run (one per host thread).
class RemoteHost {
 public:
  // `master`: the connection discovery made (hosts.hpp), or null: connect()
  // makes one with its socket in socket_dir.
  RemoteHost(const HostSpec& spec, const RemoteRun& run, const std::filesystem::path& scratch,
             const std::filesystem::path& socket_dir, std::shared_ptr<SshMaster> master = nullptr);
  ~RemoteHost();

  // Throws InfraError with ssh's words.
  void connect();
  // Makes this host's own directory there (<work_dir>/runs/<run_id>/
  // <host>.XXXXXXXX, mktemp) and copies the plan into it.
  void upload_plan();
  // Runs the cell there and brings its directory back to
  // run_dir/cells/<id>. `progress` gets the remote phase names. Returns the
  // remote vmlat's exit code (0, 1, 3, 130); throws InfraError when the host
  // could not run it (ssh failed, the host dropped, nothing came back).
  // `into`: where the cell's directory lands (run_dir/cells/<id>, or an
  // attempt's directory for a retest).
  // `on_teardown`: called once when the remote cell reaches its teardown
  // (the worker prespawns the next cell then).
  int run_cell(const std::string& cell_id, int index, const std::filesystem::path& log,
               const std::function<void(const std::string&)>& progress, const std::filesystem::path& into,
               const std::function<void()>& on_teardown = {});
  // Starts the remote `vmlat run-cell --wait-go` of the cell expected next,
  // so that its start (ssh session, vmlat's exec, plan, plugins: most of a
  // second on a TCG Xen Dom0) overlaps the current cell's teardown. It waits
  // for "go" on stdin before it takes the host lock or touches anything;
  // run_cell() of the same cell, index and log says it, any other
  // run_cell() or cleanup() drops it (stdin EOF: it exits, having done
  // nothing). Never throws (a prespawn that fails is just not used).
  void prespawn(const std::string& cell_id, int index, const std::filesystem::path& log) noexcept;
  // Removes the directory upload_plan() made, and the run's directory
  // there if that leaves it empty (best effort, never throws).
  void cleanup() noexcept;
  const SshTarget& target() const { return target_; }

 private:
  void copy_back(const std::string& cell_id, const std::filesystem::path& log, const std::filesystem::path& into);
  void unpack(const std::string& cell_id, const std::filesystem::path& archive, const std::filesystem::path& log,
              const std::filesystem::path& into);
  std::vector<std::string> run_cell_argv(const std::string& cell_id, int index, bool wait_go) const;
  void drop_prespawned() noexcept;
  struct Prespawned {
    std::string cell_id;
    int index = 0;
    std::filesystem::path log, out;
    Process process;
  };
  std::optional<Prespawned> next_;
  HostSpec spec_;
  RemoteRun run_;
  RemoteLayout layout_;
  std::string remote_dir_;  // made by upload_plan(); empty before
  std::filesystem::path scratch_;
  SshTarget target_;
  std::shared_ptr<SshMaster> master_;
};

// Shared with provisioning (provision.cpp): a local process run to its end
// (bounded; interruptible unless told not to be; stopped when it overruns or
// the wait is interrupted), a file's bytes, the last non-empty line of a text
// (at most 400 bytes).
ExitStatus run_to_end(const ProcessSpec& spec, std::chrono::seconds timeout, bool interruptible = true);
std::string file_text(const std::filesystem::path& p);
std::string last_line_of(const std::string& text);

}  // namespace vmlat
