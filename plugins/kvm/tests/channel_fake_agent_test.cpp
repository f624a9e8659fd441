// The host side of the guest channel against a fake agent: the test writes
// the agent's bytes into one end of a socketpair (garbage, truncation, a bad
// checksum, well-formed replies) and checks what GuestChannel / GuestExecutor
// make of them. No QEMU, no guest.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <string>

#include <vmlat/errors.hpp>
#include <vmlat/frame.hpp>
#include <vmlat/interrupt.hpp>

#include "guest_channel.hpp"
#include "kvm_settings.hpp"

namespace {

using namespace std::chrono_literals;
using namespace vmlat;
using namespace vmlat::kvm;

class FakeAgent {
 public:
  FakeAgent() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    host_fd_ = fds[0];
    agent_fd_ = fds[1];
  }
  ~FakeAgent() { close_agent(); if (host_fd_ >= 0) ::close(host_fd_); }
  // The host end, handed to the code under test (which then owns it).
  int take_host_fd() { int fd = host_fd_; host_fd_ = -1; return fd; }
  void write(const std::string& bytes) {
    ASSERT_EQ(::write(agent_fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void send(const std::string& kind, const json& body) { write(frame::encode(kind, body.dump())); }
  void close_agent() {
    if (agent_fd_ >= 0) ::close(agent_fd_);
    agent_fd_ = -1;
  }
  // Frames the host sent to the agent so far.
  std::vector<frame::Frame> received() {
    std::string all;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(agent_fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      all.append(buf, static_cast<std::size_t>(n));
    }
    return frame::decode_all(all).frames;
  }

 private:
  int host_fd_ = -1, agent_fd_ = -1;
};

std::string infra_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InfraError& e) {
    return e.what();
  }
  return "(no InfraError)";
}

Deadline soon() { return Clock::now() + 2s; }

TEST(KvmChannelFake, ReadsVerifiedFramesInOrder) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  agent.send("hello", json{{"kernel_release", "6.1"}});
  agent.send("pong", json{{"id", 3}});
  auto a = channel.receive(soon());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, "hello");
  EXPECT_EQ(a->body["kernel_release"], "6.1");
  auto b = channel.receive(soon());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, "pong");
  EXPECT_FALSE(channel.receive(Clock::now() + 50ms)) << "nothing more was sent";
}

TEST(KvmChannelFake, FrameSplitIntoSingleBytesStillArrives) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  const std::string bytes = frame::encode("hello", R"({"nproc":2})");
  for (char c : bytes) agent.write(std::string(1, c));
  auto m = channel.receive(soon());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body["nproc"], 2);
}

TEST(KvmChannelFake, GarbageBetweenFramesIsRejected) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  agent.write("Kernel panic - not syncing: random console noise\n");
  agent.send("hello", json::object());
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("guest channel:"), std::string::npos) << e;
  EXPECT_NE(e.find("garbage"), std::string::npos) << e;
}

TEST(KvmChannelFake, BinaryGarbageAloneIsRejected) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  agent.write(std::string("\x00\xff\x13\x37 binary", 11));
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("garbage"), std::string::npos) << e;
}

TEST(KvmChannelFake, BadChecksumIsRejectedNotHalfParsed) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  std::string bytes = frame::encode("exit", R"({"id":1,"exit_code":0,"stdout":"12345"})");
  // Corrupt one payload byte: length and trailer still agree, the CRC does not.
  const auto at = bytes.find("12345");
  bytes[at] = '9';
  agent.write(bytes);
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("guest channel: frame 'exit': checksum mismatch"), std::string::npos) << e;
}

TEST(KvmChannelFake, TruncatedFrameAtEndOfStreamIsRejected) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  const std::string bytes = frame::encode("exit", R"({"id":1,"exit_code":0,"stdout":"a long enough payload"})");
  agent.write(bytes.substr(0, bytes.size() / 2));
  agent.close_agent();
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("guest channel:"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(KvmChannelFake, FrameCutShortByTheNextHeaderIsRejected) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  const std::string bytes = frame::encode("exit", R"({"id":1,"exit_code":0})");
  agent.write(bytes.substr(0, bytes.size() - 20) + "\n");
  agent.send("hello", json::object());
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("guest channel:"), std::string::npos) << e;
}

TEST(KvmChannelFake, PayloadThatIsNotAJsonObjectIsRejected) {
  {
    FakeAgent agent;
    GuestChannel channel(agent.take_host_fd());
    agent.write(frame::encode("exit", "{not json"));
    EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("payload is not JSON"), std::string::npos);
  }
  {
    FakeAgent agent;
    GuestChannel channel(agent.take_host_fd());
    agent.write(frame::encode("exit", "[1,2]"));
    EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("not a JSON object"), std::string::npos);
  }
}

TEST(KvmChannelFake, UnknownKindIsRejected) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  agent.write(frame::encode("exec", "{}"));  // a host kind, never sent by the agent
  EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("unexpected message kind 'exec'"),
            std::string::npos);
}

TEST(KvmChannelFake, PeerClosingIsAClearError) {
  FakeAgent agent;
  GuestChannel channel(agent.take_host_fd());
  agent.close_agent();
  EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("closed the connection"), std::string::npos);
}

// A Xen console: the agent's frames among the guest's own output, over a pty
// (xenconsoled's side is the master; the host side opens the slave, raw).
class FakeConsole {
 public:
  FakeConsole() {
    if (::openpty(&master_, &slave_, nullptr, nullptr, nullptr) != 0) throw std::runtime_error("openpty");
    termios t{};
    ::tcgetattr(slave_, &t);
    ::cfmakeraw(&t);
    ::tcsetattr(slave_, TCSANOW, &t);
  }
  ~FakeConsole() {
    close_guest();
    if (slave_ >= 0) ::close(slave_);
  }
  int take_host_fd() { int fd = slave_; slave_ = -1; return fd; }
  void write(const std::string& bytes) {
    ASSERT_EQ(::write(master_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void close_guest() {
    if (master_ >= 0) ::close(master_);
    master_ = -1;
  }
  std::string read_some() {
    std::string all;
    char buf[4096];
    pollfd p{master_, POLLIN, 0};
    while (::poll(&p, 1, 200) > 0) {
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      all.append(buf, static_cast<std::size_t>(n));
    }
    return all;
  }

 private:
  int master_ = -1, slave_ = -1;
};

TEST(KvmChannelConsole, TextBetweenFramesIsTheConsoleLogNotAnError) {
  FakeConsole console;
  std::string text;
  GuestChannel channel(console.take_host_fd(), ChannelOptions{[&](std::string_view t) { text += t; }});
  console.write("[    1.234] Linux version 6.1\nvmlat-init: starting agent\n");
  console.write(frame::encode("hello", R"({"nproc":1})"));
  console.write("vmlat-agent: host connected\nnot at a line start, @@VMLAT1 is text");
  console.write("\n" + frame::encode("pong", R"({"id":7})"));
  auto a = channel.receive(soon());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, "hello");
  auto b = channel.receive(soon());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, "pong");
  EXPECT_EQ(text, "[    1.234] Linux version 6.1\nvmlat-init: starting agent\nvmlat-agent: host connected\n"
                  "not at a line start, @@VMLAT1 is text\n");
  // The host's frames reach the guest through the tty unchanged.
  channel.send("ping", json{{"id", 7}});
  const auto sent = frame::decode_all(console.read_some());
  ASSERT_EQ(sent.frames.size(), 1u);
  EXPECT_EQ(sent.frames[0].kind, "ping");
}

TEST(KvmChannelConsole, FramesAreStillVerified) {
  FakeConsole console;
  GuestChannel channel(console.take_host_fd(), ChannelOptions{[](std::string_view) {}});
  std::string bytes = frame::encode("exit", R"({"id":1,"exit_code":0,"stdout":"12345"})");
  bytes[bytes.find("12345")] = '9';
  console.write("boot text\n" + bytes);
  const std::string e = infra_error_of([&] { channel.receive(soon()); });
  EXPECT_NE(e.find("guest channel: frame 'exit': checksum mismatch"), std::string::npos) << e;
}

TEST(KvmChannelConsole, ConsoleGoingAwayIsAClearError) {
  FakeConsole console;
  std::string text;
  GuestChannel channel(console.take_host_fd(), ChannelOptions{[&](std::string_view t) { text += t; }});
  console.write("[  9.9] reboot: Power down\n");
  EXPECT_FALSE(channel.receive(Clock::now() + 200ms));
  // xenconsoled closes the pty when the domain is gone: the slave reads EIO
  // (and what was not read by then is gone: xenconsoled's own log keeps it).
  console.close_guest();
  EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("closed the connection"), std::string::npos);
  EXPECT_EQ(text, "[  9.9] reboot: Power down\n");
}

TEST(KvmChannelConsole, WithoutConsoleOptionsATtyIsStrictToo) {
  FakeConsole console;
  GuestChannel channel(console.take_host_fd());
  console.write("noise\n" + frame::encode("hello", "{}"));
  EXPECT_NE(infra_error_of([&] { channel.receive(soon()); }).find("garbage"), std::string::npos);
}

// ------------------------------------------------------------ the executor

TEST(KvmGuestExecutorFake, RunSendsExecAndReturnsTheExit) {
  FakeAgent agent;
  GuestExecutor guest(std::make_unique<GuestChannel>(agent.take_host_fd()));
  agent.send("hello", json{{"kernel_release", "6.1.0-test"}});
  EXPECT_EQ(guest.wait_hello(soon())["kernel_release"], "6.1.0-test");
  // The reply is already queued; ids start at 1.
  agent.send("exit", json{{"id", 1}, {"exit_code", 3}, {"signal", 0}, {"stdout", "out\n"}, {"stderr", "why\n"}});
  PhaseScope scope("test", Clock::now() + 10s);
  auto r = guest.run(Command{{"uname", "-r"}, 5s});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "why\n");
  auto sent = agent.received();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].kind, "exec");
  auto exec = json::parse(sent[0].payload);
  EXPECT_EQ(exec["id"], 1);
  EXPECT_EQ(exec["argv"], json({"uname", "-r"}));
  EXPECT_EQ(exec["timeout_ms"], 5000);
  EXPECT_EQ(exec["background"], false);
}

TEST(KvmGuestExecutorFake, ExecFailureAndAgentErrors) {
  FakeAgent agent;
  GuestExecutor guest(std::make_unique<GuestChannel>(agent.take_host_fd()));
  PhaseScope scope("test", Clock::now() + 10s);
  agent.send("exit", json{{"id", 1}, {"exit_code", 127}, {"error", "exec /nope: No such file or directory"}});
  auto r = guest.run(Command{{"/nope"}, 5s});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("No such file"), std::string::npos);
  agent.send("error", json{{"id", 2}, {"message", "id 2 is already running"}});
  EXPECT_NE(infra_error_of([&] { guest.run(Command{{"true"}, 5s}); }).find("refused to run true"), std::string::npos);
}

TEST(KvmGuestExecutorFake, CorruptReplyFailsTheRunAndLaterUses) {
  FakeAgent agent;
  GuestExecutor guest(std::make_unique<GuestChannel>(agent.take_host_fd()));
  PhaseScope scope("test", Clock::now() + 10s);
  std::string bytes = frame::encode("exit", R"({"id":1,"exit_code":0,"stdout":"42"})");
  bytes[bytes.find("42")] = '7';
  agent.write(bytes);
  const std::string e = infra_error_of([&] { guest.run(Command{{"echo", "42"}, 5s}); });
  EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
  // The channel stays failed: no later reply can be trusted.
  agent.send("exit", json{{"id", 2}, {"exit_code", 0}});
  EXPECT_NE(infra_error_of([&] { guest.run(Command{{"true"}, 5s}); }).find("checksum mismatch"), std::string::npos);
}

TEST(KvmGuestExecutorFake, GracefulInterruptStopsAndReturnsPartialOutput) {
  FakeAgent agent;
  GuestExecutor guest(std::make_unique<GuestChannel>(agent.take_host_fd()));
  PhaseScope scope("test", Clock::now() + 10s);
  // What the agent answers to `stop`: the stopped process's exit.
  agent.send("exit", json{{"id", 1}, {"exit_code", 0}, {"stopped", true}, {"stdout", "partial"}});
  request_cancel();
  Command c{{"cyclictest", "-D", "60"}, 60s};
  c.graceful_interrupt = true;
  c.interrupt_grace = 1s;
  CommandResult r;
  try {
    r = guest.run(c);
  } catch (...) {
    reset_cancel();
    throw;
  }
  reset_cancel();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.out, "partial");
  auto sent = agent.received();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].kind, "exec");
  EXPECT_EQ(sent[1].kind, "stop");
  EXPECT_EQ(json::parse(sent[1].payload)["grace_ms"], 1000);
}

TEST(KvmGuestExecutorFake, BackgroundJobStartsAndStops) {
  FakeAgent agent;
  GuestExecutor guest(std::make_unique<GuestChannel>(agent.take_host_fd()));
  PhaseScope scope("test", Clock::now() + 10s);
  agent.send("started", json{{"id", 1}, {"pid", 99}});
  auto job = guest.start(Command{{"stress-ng", "--cpu", "1"}});
  EXPECT_TRUE(job->running());
  agent.send("exit", json{{"id", 1}, {"exit_code", 0}, {"stopped", true}, {"stdout", "bye"}});
  auto r = job->stop(1s);
  EXPECT_EQ(r.out, "bye");
  auto sent = agent.received();
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(json::parse(sent[0].payload)["background"], true);
  EXPECT_EQ(sent.back().kind, "stop");
}

// ------------------------------------------------------------ the RT rule

TEST(KvmStarvationRule, RefusesEveryHostCpuToRtVcpus) {
  Config c;
  c.vcpus = 2;
  c.vcpu_priority = 10;
  EXPECT_TRUE(starvation_problem(c, {0, 1})) << "2 unpinned FIFO vCPUs on 2 host CPUs";
  c.vcpu_pin = {0, 1};
  EXPECT_TRUE(starvation_problem(c, {0, 1}));
  c.vcpu_pin = {1};
  EXPECT_TRUE(starvation_problem(c, {0, 1})) << "two FIFO vCPUs sharing host CPU 1";
  c.vcpus = 1;
  EXPECT_FALSE(starvation_problem(c, {0, 1})) << "CPU 0 stays free of RT vCPUs";
  c.vcpus = 2;
  c.vcpu_pin = {1, 2};
  EXPECT_FALSE(starvation_problem(c, {0, 1, 2}));
  c.vcpus = 1;
  c.vcpu_pin = {};
  EXPECT_FALSE(starvation_problem(c, {0, 1}));
  c.vcpus = 2;
  c.vcpu_pin = {0, 1};
  c.allow_rt_starvation = true;
  EXPECT_FALSE(starvation_problem(c, {0, 1}));
  c.allow_rt_starvation = false;
  c.vcpu_priority = 0;
  EXPECT_FALSE(starvation_problem(c, {0, 1})) << "SCHED_OTHER vCPUs cannot starve the host";
}

}  // namespace
