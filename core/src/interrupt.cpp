#include "vmlat/interrupt.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <thread>

#include "interrupt_fd.hpp"
#include "vmlat/errors.hpp"

namespace vmlat {

namespace {
volatile std::sig_atomic_t g_cancel_signal = 0;
// Set once, before any handler can run, and never closed: the handler may
// write to it at any moment until exit.
volatile int g_wakeup_fd = -1;

// Async-signal-safe (write(2) on an eventfd). The counter is never read, so
// the descriptor stays readable for every poller.
void wake_waiters() noexcept {
  const int fd = g_wakeup_fd;
  if (fd < 0) return;
  const int saved = errno;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  errno = saved;
}

struct PhaseState {
  std::string name = "idle";
  Deadline deadline = Deadline::max();
  bool interruptible = true;
};
thread_local PhaseState t_phase;

extern "C" void on_cancel_signal(int signo) {
  g_cancel_signal = signo;
  wake_waiters();
}
}  // namespace

void request_cancel() noexcept {
  if (!g_cancel_signal) g_cancel_signal = SIGINT;
  wake_waiters();
}
bool cancel_requested() noexcept { return g_cancel_signal != 0; }
int cancel_signal() noexcept { return g_cancel_signal; }
void reset_cancel() noexcept {
  g_cancel_signal = 0;
  if (g_wakeup_fd >= 0) {
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(g_wakeup_fd, &count, sizeof count);  // non-blocking: nothing to drain is fine
  }
}
int cancel_wakeup_fd() noexcept { return g_wakeup_fd; }

void install_cancel_handlers() {
  if (g_wakeup_fd < 0) g_wakeup_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_cancel_signal) wake_waiters();
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
