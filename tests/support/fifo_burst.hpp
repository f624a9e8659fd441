// A SCHED_FIFO 99 busy loop pinned to one host CPU, for tests that make a
// thread on that CPU wait (host-side evidence). The child ends by itself
// after the burst and dies with its parent (PR_SET_PDEATHSIG); the
// destructor kills and reaps it on every path. Two such bursts can starve a
// 2-CPU host: keep them short (RT throttling stays on: 950 ms a second).
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

namespace vmlat::testing {

inline std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class FifoBurst {
 public:
  // The child's name (comm) is "vmlat-burst".
  FifoBurst(int cpu, std::int64_t ns) {
    start_ns_ = monotonic_ns();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::prctl(PR_SET_NAME, "vmlat-burst");
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      if (::sched_setaffinity(0, sizeof set, &set) != 0) ::_exit(3);
      sched_param p{};
      p.sched_priority = 99;
      if (::sched_setscheduler(0, SCHED_FIFO, &p) != 0) ::_exit(4);
      const std::int64_t end = monotonic_ns() + ns;
      while (monotonic_ns() < end) {
      }
      ::_exit(0);
    }
  }
  FifoBurst(const FifoBurst&) = delete;
  FifoBurst& operator=(const FifoBurst&) = delete;
  // Waits for the child: 0 when it ran its burst, 3 affinity refused, 4
  // SCHED_FIFO refused.
  int wait() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_) {
      pid_ = -1;
      end_ns_ = monotonic_ns();
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return -1;
  }
  ~FifoBurst() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::int64_t start_ns() const { return start_ns_; }  // host CLOCK_MONOTONIC
  std::int64_t end_ns() const { return end_ns_; }

 private:
  pid_t pid_ = -1;
  std::int64_t start_ns_ = 0, end_ns_ = 0;
};

}  // namespace vmlat::testing
