#include "vmlat/interrupt.hpp"

#include <csignal>
#include <thread>

#include "vmlat/errors.hpp"

namespace vmlat {

namespace {
volatile std::sig_atomic_t g_cancel_signal = 0;

struct PhaseState {
  std::string name = "idle";
  Deadline deadline = Deadline::max();
  bool interruptible = true;
};
thread_local PhaseState t_phase;

extern "C" void on_cancel_signal(int signo) { g_cancel_signal = signo; }
}  // namespace

void request_cancel() noexcept {
  if (!g_cancel_signal) g_cancel_signal = SIGINT;
}
bool cancel_requested() noexcept { return g_cancel_signal != 0; }
int cancel_signal() noexcept { return g_cancel_signal; }
void reset_cancel() noexcept { g_cancel_signal = 0; }

void install_cancel_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_cancel_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and notice
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed terminal or pipe must not kill us half-way through a write.
  signal(SIGPIPE, SIG_IGN);
}

PhaseScope::PhaseScope(std::string name, Deadline deadline, bool interruptible)
    : previous_name_(std::move(t_phase.name)),
      previous_deadline_(t_phase.deadline),
      previous_interruptible_(t_phase.interruptible) {
  t_phase.name = std::move(name);
  t_phase.deadline = deadline;
  t_phase.interruptible = interruptible;
}

PhaseScope::~PhaseScope() {
  t_phase.name = std::move(previous_name_);
  t_phase.deadline = previous_deadline_;
  t_phase.interruptible = previous_interruptible_;
}

const std::string& current_phase() { return t_phase.name; }
Deadline current_deadline() { return t_phase.deadline; }

void check_interrupt() {
  if (t_phase.interruptible && cancel_requested()) throw Cancelled();
  if (Clock::now() >= t_phase.deadline)
    throw PhaseTimeout("phase '" + t_phase.name + "' exceeded its timeout");
}

void interruptible_sleep(std::chrono::milliseconds d) {
  auto until = std::min(Clock::now() + d, t_phase.deadline);
  while (Clock::now() < until) {
    if (t_phase.interruptible && cancel_requested()) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(20)));
  }
  check_interrupt();
}

}  // namespace vmlat
