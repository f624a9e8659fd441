// Cancellation (SIGINT/SIGTERM) and phase deadlines.
//
// The runner sets a deadline for each phase of a cell (prepare, boot, start,
// measure, stop) on the thread that runs the cell. Every blocking wait in the
// core's process API and in plugins calls check_interrupt(), which throws
// Cancelled once the user interrupted the run, or PhaseTimeout once the phase
// deadline has passed. Cleanup code (teardown, stopping a workload) runs in an
// uninterruptible phase so it can still kill and reap its processes.
#pragma once

#include <chrono>
#include <string>

namespace vmlat {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Async-signal-safe: marks the process as cancelled.
void request_cancel() noexcept;
bool cancel_requested() noexcept;
// Installs SIGINT/SIGTERM handlers that call request_cancel(). Returns the
// signal number that cancelled the run via cancel_signal() (0 if none).
void install_cancel_handlers();
int cancel_signal() noexcept;
// For tests: clears the cancellation flag.
void reset_cancel() noexcept;

// The current phase of the calling thread.
class PhaseScope {
 public:
  PhaseScope(std::string name, Deadline deadline, bool interruptible = true);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  std::string previous_name_;
  Deadline previous_deadline_;
  bool previous_interruptible_;
};

const std::string& current_phase();
Deadline current_deadline();
// Throws Cancelled or PhaseTimeout as described above.
void check_interrupt();
// Sleeps up to `d` (bounded by the phase deadline), then check_interrupt().
void interruptible_sleep(std::chrono::milliseconds d);

}  // namespace vmlat
