// Commands over SSH (docs/ARCHITECTURE.md, "Hosts"): the argv of an ssh
// command, and an Executor whose commands run at the other end. The core's
// lab hosts use it, and so does a backend that reaches its guest over SSH
// (the libvirt backend's access = "ssh").
//
// ssh joins the words after the destination with spaces and hands them to
// the remote user's login shell. So that no plan value is ever parsed by a
// shell, every word of a remote argv is single-quoted (shell_quote); the
// destination and its options come from validated settings
// (ssh_setting_problem) and the destination stands after "--", so none of
// them can be taken for an ssh option.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/executor.hpp"

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

// What a setting that reaches ssh's command line is.
enum class SshSetting { address, user, identity_file, known_hosts };
// Why `value` cannot be that setting, or nullopt. Refused: empty, a leading
// '-' (an option), spaces and control characters (another word, a new line
// in an inventory); an address with a user, a path or quotes in it; a user
// with anything but letters, digits, '_', '-' and '.'.
std::optional<std::string> ssh_setting_problem(SshSetting kind, std::string_view value);

// ssh [options] -- address 'word' 'word' ...; `remote` may be empty (-N).
std::vector<std::string> ssh_argv(const SshTarget& target, const std::string& remote_command,
                                  bool master = false);

// Whether an ssh command's failure was ssh's (exit 255: no connection,
// authentication refused, connection lost) rather than the remote command's.
inline bool ssh_failed(int exit_code) { return exit_code == 255; }

// Commands on a host over ssh (argv quoted for its shell). Output is
// captured in files under `scratch` on this machine.
std::unique_ptr<Executor> make_ssh_executor(SshTarget target, std::filesystem::path scratch, std::string remote_temp_dir);

}  // namespace vmlat
