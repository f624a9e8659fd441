#include "vmlat/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <mutex>
#include <set>
#include <thread>

#include "self_path.hpp"
#include "vmlat/errors.hpp"

extern char** environ;

namespace vmlat {

namespace {

// Process groups started by vmlat and not yet reaped.
std::mutex g_registry_mutex;
std::set<pid_t>& registry() {
  static auto* groups = new std::set<pid_t>();  // leaked: usable from atexit
  return *groups;
}

void register_group(pid_t pgid) {
  std::lock_guard lock(g_registry_mutex);
  static bool hooked = false;
  if (!hooked) {
    std::atexit([] { kill_all_children(); });
    hooked = true;
  }
  registry().insert(pgid);
}

void unregister_group(pid_t pgid) {
  std::lock_guard lock(g_registry_mutex);
  registry().erase(pgid);
}

ExitStatus decode(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) s.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

bool is_executable(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (timed_out) return "timed out";
  if (signal) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exit code " + std::to_string(exit_code);
}

std::filesystem::path find_in_path(const std::string& program, const std::vector<std::filesystem::path>& extra_dirs) {
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) return is_executable(program) ? std::filesystem::path(program) : std::filesystem::path();
  std::vector<std::filesystem::path> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  for (const auto& dir : dirs) {
    auto candidate = dir / program;
    if (is_executable(candidate)) return candidate;
  }
  return {};
}

std::optional<std::filesystem::path> beside_executable(const std::filesystem::path& relative) {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  auto dir = (exe.parent_path() / relative).lexically_normal();
  if (!std::filesystem::is_directory(dir, ec)) return std::nullopt;
  return dir;
}

std::vector<std::filesystem::path> libexec_dirs() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("VMLAT_LIBEXEC_PATH")) {
    std::string_view rest(env);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // As for plugins (loader.cpp): an installed vmlat uses its own helpers.
  std::optional<std::filesystem::path> installed;
#ifdef VMLAT_RELATIVE_LIBEXEC_DIR
  installed = beside_executable(VMLAT_RELATIVE_LIBEXEC_DIR);
#endif
  if (installed) dirs.push_back(*installed);
#ifdef VMLAT_BUILD_LIBEXEC_DIR
  else if (std::filesystem::is_directory(VMLAT_BUILD_LIBEXEC_DIR)) dirs.emplace_back(VMLAT_BUILD_LIBEXEC_DIR);
#endif
#ifdef VMLAT_INSTALL_LIBEXEC_DIR
  if (!installed || *installed != std::filesystem::path(VMLAT_INSTALL_LIBEXEC_DIR)) dirs.emplace_back(VMLAT_INSTALL_LIBEXEC_DIR);
#endif
  return dirs;
}

Process Process::spawn(const ProcessSpec& spec) {
  if (spec.argv.empty()) throw InfraError("cannot start a process with an empty argv");
  const std::string& program = spec.argv.front();
  auto resolved = find_in_path(program);
  if (resolved.empty())
    throw InfraError("cannot start '" + program + "': not found in PATH or not executable");

  // Everything the child needs is prepared before fork(): after fork only
  // async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string_view::npos && spec.env.count(std::string(entry.substr(0, eq)))) continue;
    env_storage.emplace_back(entry);
  }
  for (const auto& [k, v] : spec.env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  // Absolute: the child may change its working directory before execve.
  std::string resolved_str = std::filesystem::absolute(resolved).string();
  std::string out_path = spec.stdout_path.empty() ? "/dev/null" : spec.stdout_path.string();
  std::string err_path = spec.stderr_path.empty() ? "/dev/null" : spec.stderr_path.string();
  bool same_file = out_path == err_path && out_path != "/dev/null";
  std::string cwd = spec.working_dir.string();

  std::string in_path = spec.stdin_path.empty() ? "/dev/null" : spec.stdin_path.string();
  int input_pipe[2] = {-1, -1};
  if (spec.stdin_pipe && ::pipe2(input_pipe, O_CLOEXEC) != 0) throw InfraError(std::string("pipe2: ") + std::strerror(errno));
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) {
    int saved = errno;
    if (spec.stdin_pipe) {
      ::close(input_pipe[0]);
      ::close(input_pipe[1]);
    }
    throw InfraError(std::string("pipe2: ") + std::strerror(saved));
  }
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    if (spec.stdin_pipe) {
      ::close(input_pipe[0]);
      ::close(input_pipe[1]);
    }
    throw InfraError("cannot fork to start '" + program + "': " + std::strerror(saved));
  }
  if (pid == 0) {
    auto die = [&](int stage) {
      int payload[2] = {stage, errno};
      [[maybe_unused]] auto n = ::write(error_pipe[1], payload, sizeof payload);
      ::_exit(127);
    };
    ::setpgid(0, 0);
    // If vmlat dies without cleaning up (SIGKILL), the child goes too.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Default dispositions: the parent's handlers must not leak into tools.
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int in = spec.stdin_pipe ? input_pipe[0] : ::open(in_path.c_str(), O_RDONLY);
    if (in < 0 || ::dup2(in, 0) < 0) die(1);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (out < 0 || ::dup2(out, 1) < 0) die(2);
    if (same_file) {
      if (::dup2(out, 2) < 0) die(3);
    } else {
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
      if (err < 0 || ::dup2(err, 2) < 0) die(3);
    }
    for (int fd : spec.inherit_fds)
      if (::fcntl(fd, F_SETFD, 0) != 0) die(6);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) die(4);
    ::execve(resolved_str.c_str(), argv.data(), envp.data());
    die(5);
  }
  ::setpgid(pid, pid);  // also from the parent: no race with an early kill
  register_group(pid);
  ::close(error_pipe[1]);
  if (spec.stdin_pipe) ::close(input_pipe[0]);
  int payload[2] = {0, 0};
  ssize_t n;
  do n = ::read(error_pipe[0], payload, sizeof payload);
  while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof payload)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    unregister_group(pid);
    std::string where;
    if (spec.stdin_pipe) ::close(input_pipe[1]);
    switch (payload[0]) {
      case 1: where = "open " + in_path; break;
      case 2: where = "open " + out_path; break;
      case 3: where = "open " + err_path; break;
      case 4: where = "change directory to " + cwd; break;
      case 6: where = "keep an inherited descriptor"; break;
      default: where = "execute " + resolved_str; break;
    }
    throw InfraError("cannot start '" + program + "': " + where + ": " + std::strerror(payload[1]));
  }
  Process p;
  p.pid_ = pid;
  p.stdin_fd_ = spec.stdin_pipe ? input_pipe[1] : -1;
  p.program_ = program;
  return p;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdin_fd_(std::exchange(other.stdin_fd_, -1)),
      program_(std::move(other.program_)),
      status_(std::move(other.status_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) stop(std::chrono::milliseconds(2000));
    close_stdin();
    pid_ = std::exchange(other.pid_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    program_ = std::move(other.program_);
    status_ = std::move(other.status_);
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !status_) stop(std::chrono::milliseconds(2000));
  close_stdin();
}

bool Process::write_stdin(std::string_view bytes) noexcept {
  if (stdin_fd_ < 0) return false;
  while (!bytes.empty()) {
    const ssize_t n = ::write(stdin_fd_, bytes.data(), bytes.size());  // SIGPIPE is ignored (interrupt.cpp)
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Process::close_stdin() noexcept {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

std::optional<ExitStatus> Process::poll() {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode(status);
    // The leader is gone; whatever else runs in its group is killed with it
    // so that no stray worker survives (stress-ng forks workers).
    ::kill(-pid_, SIGKILL);
    unregister_group(pid_);
  } else if (r < 0 && errno == ECHILD) {
    status_ = ExitStatus{};
    unregister_group(pid_);
  }
  return status_;
}

bool Process::running() { return pid_ > 0 && !poll(); }

ExitStatus Process::wait(Deadline deadline, bool interruptible) {
  auto delay = std::chrono::milliseconds(1);
  while (true) {
    if (auto s = poll()) return *s;
    if (interruptible) check_interrupt();
    if (Clock::now() >= deadline) {
      ExitStatus s;
      s.timed_out = true;
      return s;
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(20));
  }
}

ExitStatus Process::stop(std::chrono::milliseconds grace, int first_signal) noexcept {
  close_stdin();
  if (pid_ <= 0) return ExitStatus{};
  if (auto s = poll()) return *s;
  // Ask the leader alone first: tools that manage workers (stress-ng) shut
  // them down cleanly and report a clean exit, whereas a signal to the whole
  // group hits the workers mid-operation. Whatever is left of the group when
  // the leader has gone (or the grace has passed) is killed with SIGKILL.
  ::kill(pid_, first_signal);
  auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (auto s = poll()) return *s;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode(status);
  unregister_group(pid_);
  return *status_;
}

void kill_all_children() noexcept {
  std::set<pid_t> groups;
  {
    std::lock_guard lock(g_registry_mutex);
    groups.swap(registry());
  }
  for (pid_t g : groups) ::kill(-g, SIGKILL);
}

}  // namespace vmlat
