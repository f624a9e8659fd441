// Starting and stopping processes: argv vectors only (never a shell), each
// child in its own process group, output to files, whole-group kill, and a
// process-wide registry so no child outlives vmlat.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/interrupt.hpp"

namespace vmlat {

struct ProcessSpec {
  std::vector<std::string> argv;               // argv[0] is looked up in PATH if it has no '/'
  std::map<std::string, std::string> env;      // added to (or overriding) the environment
  std::filesystem::path stdout_path;           // empty: /dev/null
  std::filesystem::path stderr_path;           // empty: /dev/null; may equal stdout_path
  // Empty: inherit. Every path in argv that the child resolves itself is
  // resolved from here: pass absolute paths when setting it (argv[0] is
  // made absolute by spawn()).
  std::filesystem::path working_dir;
  // Standard input: a file to read (empty: /dev/null), or, with stdin_pipe,
  // a pipe whose writing end the parent keeps (Process::close_stdin() gives
  // the child EOF: how a remote vmlat learns that its controller wants it to
  // stop, or died).
  std::filesystem::path stdin_path;
  bool stdin_pipe = false;
  // Descriptors of this process the child keeps at the same numbers (all of
  // vmlat's are close-on-exec otherwise): e.g. a directory the child reaches
  // as /proc/self/fd/N/ without changing its working directory.
  std::vector<int> inherit_fds;
};

struct ExitStatus {
  int exit_code = -1;  // valid when signal == 0
  int signal = 0;      // the signal that ended it, if any
  bool timed_out = false;
  bool success() const { return signal == 0 && !timed_out && exit_code == 0; }
  std::string describe() const;  // "exit code 3", "killed by signal 9 (Killed)", "timed out"
};

class Process {
 public:
  // Throws InfraError naming the program and the reason (e.g. not found).
  static Process spawn(const ProcessSpec& spec);

  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  ~Process();  // kills the process group if still running

  pid_t pid() const { return pid_; }
  bool running();
  // Non-blocking: the exit status once the process has ended.
  std::optional<ExitStatus> poll();
  // Waits until the process ends or `deadline` passes (then returns
  // timed_out = true; the process keeps running). Calls check_interrupt()
  // while waiting when `interruptible`.
  ExitStatus wait(Deadline deadline, bool interruptible = true);
  // SIGTERM (or `first_signal`) to the process, then SIGKILL to its whole
  // process group once it has exited or `grace` has passed; reaps. Never
  // throws; safe to call twice.
  ExitStatus stop(std::chrono::milliseconds grace, int first_signal = 15) noexcept;
  const std::string& program() const { return program_; }
  // With ProcessSpec::stdin_pipe: closes our end of the child's stdin (the
  // child reads EOF). Safe to call twice; also done by stop() and the
  // destructor.
  void close_stdin() noexcept;
  // With ProcessSpec::stdin_pipe: writes `bytes` to the child's stdin.
  // False if it could not (closed, or the child is gone: EPIPE).
  bool write_stdin(std::string_view bytes) noexcept;

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::string program_;
  std::optional<ExitStatus> status_;
};

// Kills every process group vmlat started that is still registered. Used by
// the runner on exit paths; the registry also kills them from an atexit hook.
void kill_all_children() noexcept;

// PATH lookup (plus extra dirs). Empty if not found or not executable.
std::filesystem::path find_in_path(const std::string& program,
                                   const std::vector<std::filesystem::path>& extra_dirs = {});

// Directories holding vmlat's helper programs (e.g. vmlat-probe):
// $VMLAT_LIBEXEC_PATH, the build tree, the install prefix.
std::vector<std::filesystem::path> libexec_dirs();

}  // namespace vmlat
