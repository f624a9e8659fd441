// A minimal QMP client (QEMU Machine Protocol: one JSON object per line over
// a unix socket) and the host-thread tuning of a QEMU process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <vmlat/interrupt.hpp>
#include <vmlat/json.hpp>

namespace vmlat::kvm {

// Connects a unix stream socket at `path`, retrying until `deadline` (QEMU
// creates it shortly after starting). Returns the fd; InfraError when the
// deadline passes. `alive` is asked between attempts (false: give up).
int connect_unix(const std::string& path, Deadline deadline, const std::function<bool()>& alive);

class QmpClient {
 public:
  // Takes a connected socket; reads the greeting and negotiates capabilities.
  QmpClient(int fd, Deadline deadline);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs a command; returns its "return" member. InfraError on "error".
  json execute(const std::string& command, const json& arguments = nullptr,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends a command without waiting for the answer (e.g. "quit").
  void send_only(const std::string& command) noexcept;
  const json& greeting() const { return greeting_; }

 private:
  json read_message(Deadline deadline);
  int fd_ = -1;
  std::string buf_;
  json greeting_;
};

// What the kvm backend applies to QEMU's host threads.
struct TuningRequest {
  std::vector<int> vcpu_pin;      // vCPU i on vcpu_pin[i % size]; empty: leave
  int vcpu_priority = 0;          // 0: leave SCHED_OTHER; 1..99: SCHED_FIFO
  std::vector<int> emulator_pin;  // host CPUs of every other QEMU thread; empty: leave
  int emulator_priority = 0;
};

struct HostThread {
  pid_t tid = 0;
  std::string comm;
  std::string role;  // "vcpu" or "emulator"
  int vcpu = -1;     // cpu-index for vCPU threads
};

// QEMU's threads: vCPUs from QMP query-cpus-fast, the rest from
// /proc/<pid>/task.
std::vector<HostThread> qemu_threads(pid_t qemu_pid, const json& cpus_fast);

// Scheduling state of a thread as the kernel reports it: policy name and
// rt_priority from /proc/<pid>/task/<tid>/stat, CPUs from sched_getaffinity.
json read_thread_state(pid_t pid, pid_t tid);

// Applies `request` to `threads` (sched_setaffinity / sched_setscheduler),
// then reads every thread back. Returns {"requested":..., "threads":[...],
// "ok": bool, "errors":[...]} — "ok" only when what was read back matches.
json apply_tuning(pid_t qemu_pid, const std::vector<HostThread>& threads, const TuningRequest& request);

}  // namespace vmlat::kvm
