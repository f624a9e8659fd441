#include "remote.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "interrupt_fd.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/process.hpp"
#include "vmlat/text.hpp"
#include "vmlat/units.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

std::string file_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string last_line_of(const std::string& text) {
  std::istringstream lines(text);
  std::string line, last;
  while (std::getline(lines, line))
    if (!trim(line).empty()) last = trim(line);
  return last.substr(0, 400);
}

ExitStatus run_to_end(const ProcessSpec& spec, std::chrono::seconds timeout, bool interruptible) {
  auto p = Process::spawn(spec);
  ExitStatus status;
  try {
    status = p.wait(Clock::now() + timeout, interruptible);
  } catch (...) {
    p.stop(std::chrono::milliseconds(2000));
    throw;
  }
  if (status.timed_out) p.stop(std::chrono::milliseconds(2000));
  return status;
}

namespace {

// What a remote cell's waiter sleeps on: output in the host's scratch
// directory (inotify), the ssh child's exit (a pidfd) and a cancel. The
// controller waits on every host's cell at once for the whole of each cell;
// waking on a clock would cost it CPU in proportion to the cells' wall time,
// which contention on the hosts stretches (bench/README.md, many_hosts_bench).
class CellWaker {
 public:
  CellWaker(const std::filesystem::path& dir, pid_t pid) {
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_ >= 0 && ::inotify_add_watch(inotify_, dir.c_str(), IN_MODIFY) < 0) close_fd(inotify_);
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  }
  ~CellWaker() {
    close_fd(inotify_);
    close_fd(pidfd_);
  }
  CellWaker(const CellWaker&) = delete;
  CellWaker& operator=(const CellWaker&) = delete;

  // Without one of the three (an old kernel, a seccomp filter, a limit on
  // inotify instances) the waiter must look on a clock, as it did before.
  bool on_events() const { return inotify_ >= 0 && pidfd_ >= 0 && cancel_wakeup_fd() >= 0; }

  // Until something happens or `timeout` passes. The cancel descriptor stays
  // readable once cancelled: a waiter that already acted on it leaves it out,
  // or it would never sleep again.
  void wait(std::chrono::milliseconds timeout, bool watch_cancel) {
    pollfd fds[3];
    nfds_t n = 0;
    for (int fd : {inotify_, pidfd_, watch_cancel ? cancel_wakeup_fd() : -1})
      if (fd >= 0) fds[n++] = pollfd{fd, POLLIN, 0};
    (void)::poll(fds, n, static_cast<int>(timeout.count()));
    // Only "something changed" matters; the events themselves are dropped.
    char buf[4096];
    if (inotify_ >= 0)
      while (::read(inotify_, buf, sizeof buf) > 0) {
      }
  }

 private:
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int inotify_ = -1;
  int pidfd_ = -1;
};

}  // namespace

RemoteHost::RemoteHost(const HostSpec& spec, const RemoteRun& run, const std::filesystem::path& scratch,
                       const std::filesystem::path& socket_dir, std::shared_ptr<SshMaster> master)
    : spec_(spec), run_(run), layout_(remote_layout(spec)), scratch_(scratch), master_(std::move(master)) {
  target_ = master_ ? master_->target() : ssh_target_of(spec, socket_dir / spec.name);
  std::filesystem::create_directories(scratch_);
}

RemoteHost::~RemoteHost() { drop_prespawned(); }

void RemoteHost::connect() {
  if (!master_ || !master_->alive()) master_ = std::make_shared<SshMaster>(target_, scratch_ / "ssh-master.log");
  master_->wait_ready(std::chrono::seconds(30));
}

void RemoteHost::upload_plan() {
  // A directory of this host's own, made here and now (mktemp -d): no other
  // plan host on the same machine, no other controller whose run has the
  // same id, no stale directory of an earlier attempt shares it, so
  // cleanup() removes nothing but ours. The plan comes on stdin; the
  // directory's name comes back on stdout. A constant script of ours, the
  // values its arguments.
  const std::string run_parent = layout_.work_dir + "/runs/" + run_.run_id;
  const std::string script =
      "n=0; until d=$(mkdir -p -- \"$1\" && mktemp -d -- \"$1/$2.XXXXXXXX\"); do "
      // The run's directory may vanish under mkdir -p (another host's
      // cleanup removes it when it is empty): try again.
      "n=$((n+1)); [ \"$n\" -lt 3 ] || exit 1; done; "
      "mkdir -- \"$d/cells\" && cat > \"$d/plan.toml\" && printf 'vmlat-dir %s\\n' \"$d\"";
  auto log = scratch_ / "upload.log", out = scratch_ / "upload.out";
  ProcessSpec spec{ssh_argv(target_, remote_command_line({"sh", "-c", script, "sh", run_parent, spec_.name})), {}, out, log, {}};
  spec.stdin_path = run_.plan_file;
  auto status = run_to_end(spec, std::chrono::seconds(120));
  const std::string said = file_text(out);
  std::error_code ec;
  std::filesystem::remove(out, ec);
  if (!status.success())
    throw InfraError("cannot copy the plan to " + target_.describe() + ": " + (last_line_of(file_text(log)).empty() ? status.describe() : last_line_of(file_text(log))));
  // Only a name of the form asked for is used (it becomes argv words there).
  const std::string expected = run_parent + "/" + spec_.name + ".";
  std::string dir;
  std::istringstream lines(said);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("vmlat-dir ", 0) == 0) dir = line.substr(10);
  const bool fits = dir.size() == expected.size() + 8 && dir.compare(0, expected.size(), expected) == 0 &&
                    std::all_of(dir.begin() + static_cast<std::ptrdiff_t>(expected.size()), dir.end(),
                                [](unsigned char c) { return std::isalnum(c); });
  if (!fits)
    throw InfraError("cannot make a directory for the run on " + target_.describe() + ": mktemp said '" +
                     last_line_of(said).substr(0, 200) + "'");
  remote_dir_ = dir;
}

std::vector<std::string> RemoteHost::run_cell_argv(const std::string& cell_id, int index, bool wait_go) const {
  std::vector<std::string> argv{layout_.vmlat(), "run-cell", remote_dir_ + "/plan.toml",
                                "--cell", cell_id,
                                "--index", std::to_string(index),
                                "--run-id", run_.run_id,
                                "--host-name", spec_.name,
                                "--out", remote_dir_,
                                "--lock-dir", layout_.lock_dir,
                                "--expect-version", std::string(version_string) + "/" + std::to_string(abi_version),
                                "--cancel-on-eof", "--send-back"};
  if (wait_go) argv.push_back("--wait-go");
  if (run_.duration) argv.insert(argv.end(), {"--duration", std::to_string(run_.duration->count()) + "ns"});
  return argv;
}

void RemoteHost::prespawn(const std::string& cell_id, int index, const std::filesystem::path& log) noexcept {
  drop_prespawned();
  try {
    Prespawned next{cell_id, index, log, scratch_ / ("cell-" + cell_id + ".events"), Process()};
    ProcessSpec spec{ssh_argv(target_, remote_command_line(run_cell_argv(cell_id, index, true))), {}, next.out, log, {}};
    spec.stdin_pipe = true;
    next.process = Process::spawn(spec);
    next_ = std::move(next);
  } catch (...) {
    next_.reset();
  }
}

void RemoteHost::drop_prespawned() noexcept {
  if (!next_) return;
  // EOF before "go": the remote vmlat exits without taking the lock.
  next_->process.close_stdin();
  (void)next_->process.wait(Clock::now() + std::chrono::seconds(10), false);
  next_->process.stop(std::chrono::milliseconds(1000));
  std::error_code ec;
  std::filesystem::remove(next_->out, ec);
  next_.reset();
}

int RemoteHost::run_cell(const std::string& cell_id, int index, const std::filesystem::path& log,
                         const std::function<void(const std::string&)>& progress, const std::filesystem::path& into,
                         const std::function<void()>& on_teardown) {
  auto out = scratch_ / ("cell-" + cell_id + ".events");
  Process p;
  if (next_ && next_->cell_id == cell_id && next_->index == index && next_->log == log &&
      next_->process.write_stdin("go\n")) {
    p = std::move(next_->process);
    next_.reset();
  } else {
    drop_prespawned();
    ProcessSpec spec{ssh_argv(target_, remote_command_line(run_cell_argv(cell_id, index, false))), {}, out, log, {}};
    spec.stdin_pipe = true;  // open for the whole cell: its EOF tells the remote vmlat to stop
    p = Process::spawn(spec);
  }

  // Phase events ("vmlat-event {...}") as the remote vmlat prints them.
  std::size_t seen = 0;
  std::string pending;
  bool ending = false;  // the remote cell is in its teardown
  bool told_teardown = false;
  auto read_events = [&] {
    // On every wakeup, and a wakeup may be for another file of the
    // directory: a stat, not an open and a read, when nothing came.
    std::error_code size_error;
    if (const auto size = std::filesystem::file_size(out, size_error); size_error || size <= seen) return;
    std::ifstream in(out, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(seen));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    seen += chunk.size();
    pending += chunk;
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.rfind("vmlat-event ", 0) != 0) continue;
      try {
        auto event = json::parse(line.substr(12));
        if (event.contains("phase") && event["phase"].is_string()) {
          progress(event["phase"].get<std::string>());
          ending = event["phase"].get<std::string>() == "teardown";
          if (ending && on_teardown && !told_teardown) {
            told_teardown = true;
            on_teardown();
          }
        }
      } catch (const std::exception&) {
      }
    }
  };

  bool asked_to_stop = false;
  Clock::time_point stop_deadline{};
  std::optional<ExitStatus> status;
  CellWaker waker(scratch_, p.pid());
  while (!(status = p.poll())) {
    read_events();
    if (cancel_requested() && !asked_to_stop) {
      // The remote vmlat stops its cell, tears it down and writes what it
      // has; give it the time a teardown takes.
      p.close_stdin();
      asked_to_stop = true;
      stop_deadline = Clock::now() + std::chrono::seconds(90);
    }
    if (asked_to_stop && Clock::now() > stop_deadline) {
      status = p.stop(std::chrono::milliseconds(2000));
      break;
    }
    std::chrono::milliseconds timeout{0};
    if (waker.on_events()) {
      // A wakeup lost to something unforeseen costs seconds, not the run.
      timeout = std::chrono::seconds(10);
      if (asked_to_stop)
        timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(stop_deadline - Clock::now()) +
                                        std::chrono::milliseconds(1));
    } else {
      // Shorter once the cell tears down: the host is idle from the remote
      // exit until we notice it. (Not all along: this may be the measured
      // machine too.)
      timeout = std::chrono::milliseconds(ending ? 20 : 100);
    }
    waker.wait(std::max(timeout, std::chrono::milliseconds(0)), !asked_to_stop);
  }
  read_events();
  const std::string why = last_line_of(file_text(log));
  if (status->signal || (status->exit_code == 255 && ssh_failed(status->exit_code))) {
    // ssh itself failed: the host dropped, or never answered. Bring back
    // whatever the remote side wrote before, if the host still answers.
    try {
      copy_back(cell_id, scratch_ / ("copy-" + cell_id + ".log"), into);
    } catch (const std::exception&) {
    }
    throw InfraError("host " + target_.describe() + " failed during the cell (ssh " + status->describe() + ")" +
                     (why.empty() ? "" : ": " + why));
  }
  PhaseScope collect("collect", Clock::now() + std::chrono::seconds(300), /*interruptible=*/false);
  // The cell directory follows the events on the same stdout (--send-back):
  // no second round trip. Without it (the cell never ran), fetch it.
  const std::string events = file_text(out);
  const std::string marker = "vmlat-archive v1\n";
  auto at = events.rfind("\n" + marker);
  if (events.rfind(marker, 0) == 0) at = 0;
  else if (at != std::string::npos) ++at;
  if (at != std::string::npos) {
    auto archive = scratch_ / ("cell-" + cell_id + ".tar");
    {
      std::ofstream tar(archive, std::ios::binary | std::ios::trunc);
      tar.write(events.data() + at + marker.size(), static_cast<std::streamsize>(events.size() - at - marker.size()));
    }
    unpack(cell_id, archive, scratch_ / ("copy-" + cell_id + ".log"), into);
  } else {
    copy_back(cell_id, scratch_ / ("copy-" + cell_id + ".log"), into);
  }
  std::error_code ec;
  std::filesystem::remove(out, ec);
  return status->exit_code;
}

void RemoteHost::copy_back(const std::string& cell_id, const std::filesystem::path& log, const std::filesystem::path& into) {
  auto archive = scratch_ / ("cell-" + cell_id + ".tar");
  std::string command = "tar -C " + shell_quote(remote_dir_ + "/cells") + " -cf - -- " + shell_quote(cell_id);
  auto status = run_to_end(ProcessSpec{ssh_argv(target_, command), {}, archive, log, {}}, std::chrono::seconds(300), false);
  if (!status.success())
    throw InfraError("the cell's results did not come back from " + target_.describe() + ": " +
                     (last_line_of(file_text(log)).empty() ? status.describe() : last_line_of(file_text(log))));
  unpack(cell_id, archive, log, into);
}

void RemoteHost::unpack(const std::string& cell_id, const std::filesystem::path& archive, const std::filesystem::path& log,
                        const std::filesystem::path& into) {
  // The archive comes from another machine: only plain files and
  // directories under <cell_id>/ are unpacked, never links or paths out.
  auto listing = scratch_ / ("cell-" + cell_id + ".list");
  auto listed = run_to_end(ProcessSpec{{"tar", "-tvf", archive.string()}, {}, listing, log, {}}, std::chrono::seconds(60), false);
  if (!listed.success()) throw InfraError("the cell archive from " + target_.describe() + " is unreadable");
  std::istringstream lines(file_text(listing));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    char type = line[0];
    auto name_at = line.find(" " + cell_id);
    std::string name = name_at == std::string::npos ? "" : line.substr(name_at + 1);
    bool inside = name == cell_id || name == cell_id + "/" || name.rfind(cell_id + "/", 0) == 0;
    if ((type != '-' && type != 'd') || !inside || name.find("/../") != std::string::npos ||
        name.size() >= 3 && name.compare(name.size() - 3, 3, "/..") == 0)
      throw InfraError("the cell archive from " + target_.describe() + " holds '" + line.substr(0, 200) +
                       "': only files and directories of the cell are accepted");
  }
  // Unpacked beside the run's cells, then moved where it belongs.
  auto staging = scratch_ / ("unpack-" + cell_id);
  std::error_code ec;
  std::filesystem::remove_all(staging, ec);
  std::filesystem::create_directories(staging);
  auto unpacked = run_to_end(ProcessSpec{{"tar", "-xf", archive.string(), "-C", staging.string(), "--no-same-owner",
                                          "--no-same-permissions", "--no-overwrite-dir", "--"},
                                         {},
                                         log,
                                         log,
                                         {}},
                             std::chrono::seconds(120), false);
  std::filesystem::remove(archive, ec);
  std::filesystem::remove(listing, ec);
  if (!unpacked.success()) throw InfraError("cannot unpack the cell's results from " + target_.describe() + ": " + last_line_of(file_text(log)));
  std::filesystem::create_directories(into.parent_path());
  std::filesystem::remove_all(into, ec);
  std::filesystem::rename(staging / cell_id, into);
  std::filesystem::remove_all(staging, ec);
  // The host's copy goes with the run's directory there (cleanup()).
}

void RemoteHost::cleanup() noexcept {
  drop_prespawned();
  try {
    if (!master_ || remote_dir_.empty()) return;
    // Our directory, then the run's if that left it empty (rmdir: never
    // another host's directory).
    auto log = scratch_ / "cleanup.log";
    const std::string run_parent = layout_.work_dir + "/runs/" + run_.run_id;
    run_to_end(ProcessSpec{ssh_argv(target_, remote_command_line({"sh", "-c", "rm -rf -- \"$1\"; rmdir -- \"$2\" 2>/dev/null; exit 0",
                                                                  "sh", remote_dir_, run_parent})),
                           {},
                           log,
                           log,
                           {}},
               std::chrono::seconds(60), false);
  } catch (...) {
  }
  remote_dir_.clear();
  master_.reset();
}

}  // namespace vmlat
