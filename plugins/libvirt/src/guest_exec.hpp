// The guest as an Executor through the QEMU guest agent (qemu-ga): every
// command is a guest-exec, its end and output read with guest-exec-status
// (output base64 in the reply). The libvirt backend's access = "guest-exec"
// (README.md); the agent is reached through libvirt
// (virDomainQemuAgentCommand), or through any AgentCommand in tests.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <vmlat/executor.hpp>
#include <vmlat/json.hpp>

namespace vmlat::libvirt {

// The agent answered a command with an error (`replied`), or could not be
// reached at all (not connected, not running, libvirt gone).
class AgentError : public std::runtime_error {
 public:
  AgentError(const std::string& what, bool replied) : std::runtime_error(what), replied_(replied) {}
  bool replied() const { return replied_; }

 private:
  bool replied_;
};

// One command to the agent: its JSON text in, the reply's JSON text out
// ({"return": ...}). Throws AgentError.
using AgentCommand = std::function<std::string(const std::string& command, std::chrono::seconds timeout)>;

// RFC 4648 base64 (qemu-ga's out-data/err-data); throws std::invalid_argument
// on anything else.
std::string base64_decode(std::string_view text);

class GuestExecExecutor final : public Executor {
 public:
  explicit GuestExecExecutor(AgentCommand agent, std::string name = "guest");
  ~GuestExecExecutor() override;

  std::string name() const override { return name_; }
  CommandResult run(const Command& command) override;
  std::unique_ptr<Job> start(const Command& command) override;
  std::optional<std::string> find_program(const std::string& name) override;
  std::map<std::string, std::optional<std::string>> find_programs(const std::vector<std::string>& names) override;
  std::string temp_dir() override { return "/tmp"; }

  // guest-ping until the agent answers (check_interrupt() between tries, so
  // the boot deadline and Ctrl-C apply); then guest-info: its version and
  // whether guest-exec is enabled. InfraError when guest-exec is not offered.
  json wait_ready(Deadline deadline);

  struct Exec;  // a guest-exec'd process: its pid, and its status once it ended

  // The wrapped argv (setsid: the command leads a process group of its own,
  // so that a signal reaches its children) and the guest-exec command for it.
  static std::vector<std::string> session_argv(const std::vector<std::string>& argv);
  static json exec_request(const std::vector<std::string>& argv);
  // guest-exec-status's reply as a CommandResult (nullopt: still running).
  static std::optional<CommandResult> status_result(const json& reply);

 private:
  std::shared_ptr<Exec> spawn(const Command& command);
  std::string name_;
  std::shared_ptr<AgentCommand> agent_;
};

}  // namespace vmlat::libvirt
