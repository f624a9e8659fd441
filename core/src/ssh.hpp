// SSH to lab hosts (docs/ARCHITECTURE.md, "Hosts"): a master connection
// that later commands reuse. The argv of an ssh command and the executor are
// public (vmlat/ssh.hpp): a backend may reach its guest over SSH.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/executor.hpp"
#include "vmlat/process.hpp"
#include "vmlat/ssh.hpp"

namespace vmlat {

// A master connection (ControlMaster) kept for the whole run: later ssh
// commands to the host reuse it (no new handshake per command).
//
// Start it from a thread that outlives it (the main thread of a run):
// PR_SET_PDEATHSIG kills a child when the *thread* that started it ends.
class SshMaster {
 public:
  // Starts connecting; wait_ready() waits for the connection.
  SshMaster(const SshTarget& target, const std::filesystem::path& log_path);
  ~SshMaster();
  SshMaster(const SshMaster&) = delete;
  SshMaster& operator=(const SshMaster&) = delete;
  // Throws InfraError with ssh's own words when it cannot connect.
  void wait_ready(std::chrono::milliseconds timeout);
  bool alive();
  const SshTarget& target() const { return target_; }

 private:
  SshTarget target_;
  std::filesystem::path log_path_;
  Process process_;
  bool ready_ = false;
};

// A short directory for control sockets (a unix socket path has at most 107
// bytes): `preferred` if it is short enough, else one under /tmp that the
// caller removes.
std::filesystem::path control_socket_dir(const std::filesystem::path& preferred);

}  // namespace vmlat
