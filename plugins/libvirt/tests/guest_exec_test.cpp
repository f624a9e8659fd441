// The guest-exec executor against the real QEMU guest agent (Debian's
// qemu-ga, run on this machine with -m unix-listen: the same program the
// guest images carry, reached over a socket instead of libvirt). What it
// checks: argv words reach the program unchanged (hostile ones included),
// exit codes, signals, stdout/stderr (base64 in guest-exec-status), a
// missing program, the timeout and Ctrl-C (the whole process group ended),
// background jobs, one round trip for find_programs, wait_ready.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/process.hpp>
#include <vmlat/text.hpp>

#include "guest_exec.hpp"

using namespace vmlat;
using namespace vmlat::libvirt;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// qemu-ga listening on a unix socket of the test's; one connection per
// command (it serves one client at a time).
class RealQemuGa {
 public:
  RealQemuGa() {
    char tmpl[] = "/tmp/vmlat-qga-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ / "qga.sock";
    process_ = Process::spawn(ProcessSpec{{program(), "-m", "unix-listen", "-p", socket_.string(), "-t", dir_.string(), "-f",
                                           (dir_ / "qga.pid").string()},
                                          {},
                                          dir_ / "qga.log",
                                          dir_ / "qga.log",
                                          {}});
    for (int i = 0; i < 200 && !fs::exists(socket_); ++i) std::this_thread::sleep_for(20ms);
  }
  ~RealQemuGa() {
    process_.stop(2s);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string program() {
    for (const char* p : {"/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"})
      if (::access(p, X_OK) == 0) return p;
    return {};
  }
  int commands() const { return commands_; }

  AgentCommand agent() {
    return [this](const std::string& command, std::chrono::seconds timeout) { return send(command, timeout); };
  }

 private:
  std::string send(const std::string& command, std::chrono::seconds timeout) {
    ++commands_;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw AgentError(std::string("connect: ") + std::strerror(errno), false);
    }
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string line = command + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      ::close(fd);
      throw AgentError("write failed", false);
    }
    std::string reply;
    char buf[65536];
    while (reply.find('\n') == std::string::npos) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const json doc = json::parse(reply);
    if (doc.contains("error")) throw AgentError(doc["error"].value("desc", std::string("?")), true);
    return reply;
  }

  fs::path dir_, socket_;
  Process process_;
  int commands_ = 0;
};

// Processes whose command line contains `marker`.
int processes_with(const std::string& marker) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = slurp(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(marker) != std::string::npos) ++n;
  }
  return n;
}

class GuestExec : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RealQemuGa::program().empty()) GTEST_SKIP() << "qemu-ga is not installed (qemu-guest-agent: ci/bootstrap)";
    qga_ = std::make_unique<RealQemuGa>();
    exec_ = std::make_unique<GuestExecExecutor>(qga_->agent(), "guest");
  }
  std::unique_ptr<RealQemuGa> qga_;
  std::unique_ptr<GuestExecExecutor> exec_;
};

TEST(GuestExecBase64, DecodesRfc4648AndRefusesTheRest) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9v"), "foo");
  EXPECT_EQ(base64_decode("AP8A/w=="), std::string("\x00\xff\x00\xff", 4));
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg="})
    EXPECT_THROW(base64_decode(bad), std::invalid_argument) << bad;
}

TEST(GuestExecRequest, ArgvWordsArePassedAsTheyAreBehindSetsid) {
  const json r = GuestExecExecutor::exec_request({"cyclictest", "-q", "--policy=fifo", "$(reboot)"});
  EXPECT_EQ(r["execute"], "guest-exec");
  EXPECT_EQ(r["arguments"]["path"], "setsid");
  EXPECT_EQ(r["arguments"]["arg"], json({"cyclictest", "-q", "--policy=fifo", "$(reboot)"}));
  EXPECT_EQ(r["arguments"]["capture-output"], true);
}

TEST_F(GuestExec, RunsWithHostileWordsUnchangedAndReportsExitAndOutput) {
  const std::vector<std::string> words{"-n", "--help", "a b", "$(touch /tmp/pwned)", "x\ny", "'\"", "..", "ü"};
  std::vector<std::string> argv{"printf", "%s\\n"};
  argv.insert(argv.end(), words.begin(), words.end());
  auto r = exec_->run(Command{argv, 20s});
  ASSERT_TRUE(r.ok()) << r.describe() << r.err;
  std::string expected;
  for (const auto& w : words) expected += w + "\n";
  EXPECT_EQ(r.out, expected);

  r = exec_->run(Command{{"sh", "-c", "echo out; echo err >&2; exit 3"}, 20s});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");

  r = exec_->run(Command{{"sh", "-c", "kill -TERM $$"}, 20s});
  EXPECT_EQ(r.signal, SIGTERM) << r.describe();

  // Output larger than one read of qemu-ga's pipe.
  r = exec_->run(Command{{"head", "-c", "300000", "/dev/zero"}, 20s});
  EXPECT_EQ(r.out.size(), 300000u);
}

TEST_F(GuestExec, AMissingProgramIsExit127WithTheAgentsWords) {
  auto r = exec_->run(Command{{"/nonexistent/vmlat-nothing"}, 20s});
  EXPECT_EQ(r.exit_code, 127) << r.describe();
  EXPECT_FALSE(exec_->find_program("vmlat-no-such-program").has_value());
  const auto sh = exec_->find_program("sh");
  ASSERT_TRUE(sh.has_value());
  EXPECT_TRUE(fs::exists(*sh)) << *sh;
  const int before = qga_->commands();
  auto found = exec_->find_programs({"sh", "vmlat-no-such-program", "printf"});
  // One guest-exec and its status questions, not one per name.
  EXPECT_LE(qga_->commands() - before, 8);
  EXPECT_TRUE(found.at("sh").has_value());
  EXPECT_EQ(found.at("sh")->front(), '/');
  EXPECT_FALSE(found.at("vmlat-no-such-program").has_value());
  EXPECT_TRUE(found.at("printf").has_value());
}

TEST_F(GuestExec, TimeoutEndsTheWholeProcessGroup) {
  // Sleeps of durations no other process has: how the test finds them.
  const std::string child = "sleep 3000." + std::to_string(::getpid()), main = "sleep 3001." + std::to_string(::getpid());
  const auto t0 = Clock::now();
  // A child that would outlive its parent's SIGKILL unless the group is signalled.
  auto r = exec_->run(Command{{"sh", "-c", child + " & exec " + main}, 700ms});
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(Clock::now() - t0, 15s);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(processes_with(main), 0);
  EXPECT_EQ(processes_with(child), 0);
}

TEST_F(GuestExec, InterruptGivesTheProbeItsGraceAndKeepsItsOutput) {
  const std::string script = "trap 'echo partial; exit 0' INT; echo started; while :; do sleep 0.05; done";
  std::thread cancel([] {
    std::this_thread::sleep_for(800ms);
    request_cancel();
  });
  Command c{{"sh", "-c", script}, 30s};
  c.graceful_interrupt = true;
  c.interrupt_grace = 5s;
  auto r = exec_->run(c);
  cancel.join();
  reset_cancel();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.out, "started\npartial\n") << r.describe();

  // Without graceful_interrupt, Cancelled propagates and the command is gone.
  const std::string marker = "sleep 3002." + std::to_string(::getpid());
  std::thread again([] {
    std::this_thread::sleep_for(500ms);
    request_cancel();
  });
  EXPECT_THROW(exec_->run(Command{{"sh", "-c", marker + "; true"}, 30s}), Cancelled);
  again.join();
  reset_cancel();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(processes_with(marker), 0);
}

TEST_F(GuestExec, BackgroundJobRunsUntilStoppedThenGivesItsOutput) {
  const std::string marker = "vmlat-ge-job-" + std::to_string(::getpid());
  auto job = exec_->start(Command{{"sh", "-c", "echo begun; trap 'echo stopping; exit 0' TERM; while :; do sleep 0.05; done", marker}});
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(job->running());
  EXPECT_EQ(job->read_output(1024), "") << "qemu-ga gives output only at the end";
  auto r = job->stop(3s);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "begun\nstopping\n");
  EXPECT_FALSE(job->running());
  EXPECT_EQ(processes_with(marker), 0);

  auto quick = exec_->start(Command{{"printf", "done"}});
  for (int i = 0; i < 100 && quick->running(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(quick->running());
  EXPECT_EQ(quick->read_output(2), "do");
  EXPECT_EQ(quick->read_output(100), "ne");
}

TEST_F(GuestExec, WaitReadyReportsTheAgentsVersion) {
  const json info = exec_->wait_ready(Clock::now() + 20s);
  EXPECT_FALSE(info.value("version", std::string()).empty());
  EXPECT_NE(info["version"], "?");
}

TEST(GuestExecNoAgent, WaitReadyTimesOutWithTheLastError) {
  GuestExecExecutor exec([](const std::string&, std::chrono::seconds) -> std::string {
    throw AgentError("Guest agent is not responding: QEMU guest agent is not connected", false);
  });
  try {
    exec.wait_ready(Clock::now() + 300ms);
    FAIL() << "no PhaseTimeout";
  } catch (const PhaseTimeout& e) {
    EXPECT_NE(std::string(e.what()).find("not connected"), std::string::npos) << e.what();
  }
  // A command through an agent that cannot be reached is an infrastructure error.
  EXPECT_THROW(exec.run(Command{{"true"}, 1s}), InfraError);
}

}  // namespace
