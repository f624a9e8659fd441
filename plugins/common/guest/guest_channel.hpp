// The host side of the guest agent's channel (plugins/common/guest/agent/README.md):
// vmlat frames carrying JSON objects over a stream socket (QEMU's chardev
// socket of the virtio-serial port) or a tty (the pty of a Xen domain's
// console), and an Executor built on it.
//
// The channel is strict: it carries nothing but frames (unless it is a
// console, see ChannelOptions), so any byte outside a frame, a malformed or truncated frame, a checksum mismatch, a payload that
// is not a JSON object or an unknown kind is an InfraError naming what was
// wrong ("guest channel: frame 'exit': checksum mismatch ..."). Nothing is
// ever half-parsed: a message is only handed on once its frame verified.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <vmlat/executor.hpp>
#include <vmlat/frame.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/json.hpp>

namespace vmlat::kvm {

struct Message {
  std::string kind;
  json body;
};

struct ChannelOptions {
  // A console channel (Xen's PV console through xenconsoled's pty) also
  // carries the guest's own output: its text between frames goes here instead
  // of being a protocol error. Frames are still verified as strictly.
  std::function<void(std::string_view)> console_text;
};

// Framed JSON messages over a connected stream socket or a tty (owned, closed
// by the destructor). Not thread-safe; one user at a time.
class GuestChannel {
 public:
  explicit GuestChannel(int fd, ChannelOptions options = {});
  ~GuestChannel();
  GuestChannel(const GuestChannel&) = delete;
  GuestChannel& operator=(const GuestChannel&) = delete;

  // Sends one frame. InfraError if the socket is gone.
  void send(std::string_view kind, const json& body);
  // The next verified message, or nullopt once `deadline` has passed. Does
  // not call check_interrupt() (callers do, between calls). InfraError on
  // any protocol violation or when the guest side closed the connection.
  std::optional<Message> receive(Deadline deadline);
  // True once the peer closed the connection (receive() then throws).
  bool closed() const { return closed_; }

 private:
  void check_decoder();
  void absorb();
  std::deque<frame::Frame> queue_;  // verified, not yet returned
  int fd_ = -1;
  frame::Decoder decoder_;
  std::uint64_t received_ = 0;   // bytes read from the socket
  std::uint64_t accounted_ = 0;  // bytes of verified frames (and console text)
  bool closed_ = false;
  bool socket_ = true;
  ChannelOptions options_;
};

// Kinds the agent sends (anything else is a protocol error).
bool is_agent_kind(std::string_view kind);

// The guest as an Executor: commands run through the agent's exec/stop.
// Holds the channel; Jobs it starts keep a weak reference to its state, so a
// Job outliving the executor stops harmlessly.
class GuestExecutor final : public Executor {
 public:
  explicit GuestExecutor(std::unique_ptr<GuestChannel> channel, std::string name = "guest");
  ~GuestExecutor() override;

  std::string name() const override;
  CommandResult run(const Command& command) override;
  std::unique_ptr<Job> start(const Command& command) override;
  std::optional<std::string> find_program(const std::string& name) override;
  // Bare names in one exec (sh: `which` of each); the default otherwise.
  std::map<std::string, std::optional<std::string>> find_programs(const std::vector<std::string>& names) override;
  // The guest's /tmp: a tmpfs of the guest's initramfs, gone with the guest.
  std::string temp_dir() override { return "/tmp"; }

  // Waits for the agent's hello until `deadline` (check_interrupt() between
  // reads, so the phase deadline and Ctrl-C apply). Returns the hello body.
  json wait_hello(Deadline deadline);
  // The last hello seen (null before).
  const json& hello() const;
  // Asks the agent to shut the guest down and waits for `bye` until
  // `deadline` without calling check_interrupt(). True if bye arrived.
  bool shutdown(Deadline deadline) noexcept;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace vmlat::kvm
