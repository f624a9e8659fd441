// Where commands run: this machine, a guest (through the backend's channel),
// a Xen Dom0, or a remote host. Probes and workloads only see an Executor, so
// the same plugin code measures on bare metal and in any guest.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmlat/interrupt.hpp"

namespace vmlat {

struct Command {
  std::vector<std::string> argv;  // never passed through a shell
  // Upper bound for this command; the phase deadline applies as well.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // On interruption (SIGINT to vmlat), send the command SIGINT and give it
  // `interrupt_grace` to finish and print what it has (cyclictest and
  // vmlat-probe do), then return with `interrupted` set instead of throwing
  // Cancelled. For probes, so that an interrupted cell keeps partial data.
  bool graceful_interrupt = false;
  std::chrono::milliseconds interrupt_grace{std::chrono::seconds(5)};
};

struct CommandResult {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  bool interrupted = false;  // see Command::graceful_interrupt
  std::string out;
  std::string err;
  bool ok() const { return signal == 0 && !timed_out && exit_code == 0; }
  // "exit code 2: <last line of stderr>" etc.
  std::string describe() const;
};

// A command running in the background (a workload, a streaming probe).
class Job {
 public:
  virtual ~Job() = default;
  virtual bool running() = 0;
  // Stops the job (SIGTERM to its main process; SIGKILL to whatever is left
  // of its process group once that has exited or after `grace`), returns its
  // status and output (the standard output read_output() has not returned).
  // Never throws.
  virtual CommandResult stop(std::chrono::milliseconds grace) noexcept = 0;
  // What the job wrote to its standard output since the last call, at most
  // `max_bytes` of it, without waiting (empty: nothing new yet); also after
  // the job has ended, until everything is read. The bytes returned are
  // released by the executor, so a job that writes for days and is read
  // regularly uses bounded space. Throws InfraError when the output cannot
  // be read (the executor's channel is gone: the guest died). The default
  // says the executor cannot stream.
  virtual std::string read_output(std::size_t max_bytes);
};

class Executor {
 public:
  virtual ~Executor() = default;
  // "host", "guest", "dom0", ...: for logs and messages.
  virtual std::string name() const = 0;
  // Runs to completion (or timeout / interruption: the command is killed,
  // Cancelled or PhaseTimeout propagate).
  virtual CommandResult run(const Command& command) = 0;
  virtual std::unique_ptr<Job> start(const Command& command) = 0;
  // Absolute path of a program as this executor would run it, if present.
  virtual std::optional<std::string> find_program(const std::string& name) = 0;
  // find_program() of each of `names` (every name a key of the result). The
  // default asks one at a time; an executor whose every question costs a
  // round trip (a guest's agent: an exec of 0.1-0.15 s under TCG) answers
  // them together. Overriding find_program() alone keeps both consistent.
  virtual std::map<std::string, std::optional<std::string>> find_programs(const std::vector<std::string>& names);
  // A directory on the target for temporary files (a probe's output file,
  // stress-ng's --temp-path). On this machine it lies inside the run's work
  // directory, never in /tmp, so that a killed vmlat leaves nothing outside
  // the run directory; in a guest it is a tmpfs that dies with the guest.
  virtual std::string temp_dir() = 0;
};

}  // namespace vmlat
