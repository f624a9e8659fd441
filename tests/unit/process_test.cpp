#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "interrupt_fd.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/local.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
// One scratch directory for this test binary, removed when it exits.
fs::path scratch() {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("vmlat-proc-" + std::to_string(getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}
bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }
}  // namespace

TEST(Process, RunsArgvWithoutAShell) {
  auto exec = make_local_executor(scratch());
  // A shell would expand these; argv passes them through untouched.
  auto r = exec->run(Command{{"echo", "$HOME", "a;b", "*"}, 10s});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "$HOME a;b *\n");
}

TEST(Process, ReportsExitCodeAndStderr) {
  auto exec = make_local_executor(scratch());
  auto r = exec->run(Command{{"ls", "/definitely/not/here"}, 10s});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.describe().find("exit code 2"), std::string::npos);
  EXPECT_NE(r.describe().find("not/here"), std::string::npos) << r.describe();
}

TEST(Process, MissingProgramIsAnInfraErrorNamingIt) {
  try {
    Process::spawn(ProcessSpec{{"vmlat-no-such-program"}, {}, {}, {}, {}});
    FAIL() << "spawn succeeded";
  } catch (const InfraError& e) {
    EXPECT_NE(std::string(e.what()).find("vmlat-no-such-program"), std::string::npos) << e.what();
  }
}

// A path must mean the same thing in a child that gets a working directory
// of its own (issue 16): a relative program is found where vmlat's working
// directory says, not in the child's.
TEST(Process, RelativeProgramRunsFromAnotherWorkingDirectory) {
  const fs::path dir = scratch() / "relative-program";
  fs::create_directories(dir / "bin");
  fs::create_directories(dir / "elsewhere");
  {
    std::ofstream script(dir / "bin" / "hello");
    script << "#!/bin/sh\necho hello from \"$(pwd)\"\n";
  }
  fs::permissions(dir / "bin" / "hello", fs::perms::owner_all);
  const fs::path before = fs::current_path();
  fs::current_path(dir);
  const fs::path out = dir / "out.txt";
  try {
    auto p = Process::spawn(ProcessSpec{{"bin/hello"}, {}, out, out, dir / "elsewhere"});
    const auto status = p.wait(std::chrono::steady_clock::now() + 10s);
    fs::current_path(before);
    ASSERT_TRUE(status.success()) << status.describe();
  } catch (...) {
    fs::current_path(before);
    throw;
  }
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "hello from " + (dir / "elsewhere").string() + "\n");
}

// inherit_fds: a directory the child reaches as /proc/self/fd/N/ (how QEMU
// binds the kvm backend's sockets without changing its working directory).
TEST(Process, InheritedDescriptorReachesADirectory) {
  const fs::path dir = scratch() / "inherited";
  fs::create_directories(dir);
  const int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string target = "/proc/self/fd/" + std::to_string(fd) + "/made-by-child";
  ProcessSpec spec{{"touch", target}, {}, {}, {}, {}};
  auto without = Process::spawn(spec);
  EXPECT_FALSE(without.wait(std::chrono::steady_clock::now() + 10s).success());  // close-on-exec: not there
  EXPECT_FALSE(fs::exists(dir / "made-by-child"));
  spec.inherit_fds = {fd};
  auto with = Process::spawn(spec);
  const auto status = with.wait(std::chrono::steady_clock::now() + 10s);
  ::close(fd);
  ASSERT_TRUE(status.success()) << status.describe();
  EXPECT_TRUE(fs::exists(dir / "made-by-child"));
}

TEST(Process, CommandTimeoutKillsTheProcess) {
  auto exec = make_local_executor(scratch());
  auto t0 = Clock::now();
  auto r = exec->run(Command{{"sleep", "30"}, 300ms});
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(Clock::now() - t0, 5s);
}

TEST(Process, PhaseDeadlineThrowsPhaseTimeout) {
  auto exec = make_local_executor(scratch());
  PhaseScope phase("measure", Clock::now() + 300ms);
  EXPECT_THROW(exec->run(Command{{"sleep", "30"}, 60s}), PhaseTimeout);
}

TEST(Process, StopKillsTheWholeProcessGroup) {
  // sh forks a grandchild that ignores SIGTERM; stop() must still get it.
  auto out = scratch() / "grandchild.pid";
  auto p = Process::spawn(ProcessSpec{
      {"sh", "-c", "trap '' TERM; sleep 60 & echo $! > " + out.string() + "; wait"}, {}, {}, {}, {}});
  pid_t grandchild = 0;
  for (int i = 0; i < 200 && grandchild == 0; ++i) {
    std::this_thread::sleep_for(10ms);
    std::ifstream in(out);
    in >> grandchild;
  }
  ASSERT_GT(grandchild, 0);
  ASSERT_TRUE(alive(grandchild));
  p.stop(200ms);
  std::this_thread::sleep_for(50ms);
  // Reaped by init or a zombie at most: not running.
  std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), {});
  EXPECT_TRUE(content.empty() || content.find(") Z") != std::string::npos) << content;
}

TEST(Process, GracefulInterruptReturnsPartialOutput) {
  auto exec = make_local_executor(scratch());
  reset_cancel();
  std::thread canceller([] {
    std::this_thread::sleep_for(300ms);
    request_cancel();
  });
  Command c{{"sh", "-c", "trap 'echo partial; exit 130' INT; while :; do sleep 0.05; done"}, 30s};
  c.graceful_interrupt = true;
  auto r = exec->run(c);
  canceller.join();
  reset_cancel();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(r.out, "partial\n");
}

TEST(Process, CancelThrowsWithoutGracefulInterrupt) {
  auto exec = make_local_executor(scratch());
  reset_cancel();
  std::thread canceller([] {
    std::this_thread::sleep_for(200ms);
    request_cancel();
  });
  EXPECT_THROW(exec->run(Command{{"sleep", "30"}, 30s}), Cancelled);
  canceller.join();
  reset_cancel();
}

// The controller's wait on remote cells sleeps on this descriptor instead of
// waking on a clock: it must wake on a cancel from another thread and from a
// signal, wake every waiter (it stays readable), and be quiet otherwise.
TEST(Interrupt, TheWakeupDescriptorIsReadableFromTheCancelUntilReset) {
  install_cancel_handlers();
  reset_cancel();
  const int fd = cancel_wakeup_fd();
  ASSERT_GE(fd, 0);
  auto readable = [fd](int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
  };
  EXPECT_FALSE(readable(0));
  std::thread canceller([] {
    std::this_thread::sleep_for(100ms);
    request_cancel();
  });
  EXPECT_TRUE(readable(30000));  // woken by the cancel: the timeout is only a guard
  canceller.join();
  EXPECT_TRUE(readable(0));  // a second waiter wakes too
  reset_cancel();
  EXPECT_FALSE(readable(0));

  ASSERT_EQ(::raise(SIGTERM), 0);
  EXPECT_EQ(cancel_signal(), SIGTERM);
  EXPECT_TRUE(readable(0));
  reset_cancel();
  EXPECT_FALSE(readable(0));
}

TEST(Facts, CollectsThisMachinesKernel) {
  auto exec = make_local_executor(scratch());
  auto facts = collect_system_facts(*exec);
  std::ifstream osrelease("/proc/sys/kernel/osrelease");
  std::string release;
  osrelease >> release;
  EXPECT_EQ(facts["kernel_release"], release);
  EXPECT_EQ(facts["cpu_count"].get<int>(), static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_TRUE(facts["preempt_model"].is_string());
  EXPECT_TRUE(facts["kernel_cmdline"].is_string());
}
