// SSH to lab hosts (docs/ARCHITECTURE.md, "Hosts"): the argv of an ssh
// command for a plan host, a master connection that later commands reuse,
// and an Executor whose commands run on the host.
//
// ssh joins the words after the destination with spaces and hands them to
// the remote user's login shell. So that no plan value is ever parsed by a
// shell, every word of a remote argv is single-quoted (shell_quote); the
// destination and its options come from validated host settings and stand
// after "--", so none of them can be taken for an ssh option.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/executor.hpp"
#include "vmlat/process.hpp"

namespace vmlat {

// 'word' for a POSIX shell: the word itself, whatever it contains.
std::string shell_quote(std::string_view word);
// The remote command line of `argv`: every word quoted.
std::string remote_command_line(const std::vector<std::string>& argv);

struct SshTarget {
  std::string host_name;  // the plan's name of the host, for messages
  std::string address;
  int port = 0;  // 0: ssh's default
  std::string user;
  std::string identity_file;
  std::string known_hosts;
  std::filesystem::path control_path;  // the master connection's socket; empty: none
  std::string describe() const;        // "lab1 (root@10.0.0.7:22)"
};

// ssh [options] -- address 'word' 'word' ...; `remote` may be empty (-N).
std::vector<std::string> ssh_argv(const SshTarget& target, const std::string& remote_command,
                                  bool master = false);

// Whether an ssh command's failure was ssh's (exit 255: no connection,
// authentication refused, connection lost) rather than the remote command's.
inline bool ssh_failed(int exit_code) { return exit_code == 255; }

// A master connection (ControlMaster) kept for the whole run: later ssh
// commands to the host reuse it (no new handshake per command).
class SshMaster {
 public:
  // Connects; throws InfraError with ssh's own words when it cannot.
  SshMaster(const SshTarget& target, const std::filesystem::path& log_path, std::chrono::milliseconds timeout);
  ~SshMaster();
  SshMaster(const SshMaster&) = delete;
  SshMaster& operator=(const SshMaster&) = delete;
  bool alive();

 private:
  SshTarget target_;
  Process process_;
};

// Commands on a host over ssh (argv quoted for its shell). Output is
// captured in files under `scratch` on this machine.
std::unique_ptr<Executor> make_ssh_executor(SshTarget target, std::filesystem::path scratch, std::string remote_temp_dir);

// A short directory for control sockets (a unix socket path has at most 107
// bytes): `preferred` if it is short enough, else one under /tmp that the
// caller removes.
std::filesystem::path control_socket_dir(const std::filesystem::path& preferred);

}  // namespace vmlat
