#include "ssh.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "vmlat/errors.hpp"
#include "vmlat/local.hpp"
#include "vmlat/text.hpp"

namespace vmlat {

std::string shell_quote(std::string_view word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string remote_command_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& word : argv) line += (line.empty() ? "" : " ") + shell_quote(word);
  return line;
}

std::string SshTarget::describe() const {
  std::string where = (user.empty() ? "" : user + "@") + address + (port ? ":" + std::to_string(port) : "");
  return host_name + " (" + where + ")";
}

std::optional<std::string> ssh_setting_problem(SshSetting kind, std::string_view value) {
  const char* what = kind == SshSetting::address         ? "a host name or IP address"
                     : kind == SshSetting::user          ? "a user name"
                     : kind == SshSetting::identity_file ? "a path to a private key file"
                                                         : "a path to a known_hosts file";
  const bool plain = !value.empty() && value.front() != '-' &&
                     std::none_of(value.begin(), value.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
  if (!plain) return std::string("must be ") + what + " (no spaces or control characters, not starting with '-')";
  if (kind == SshSetting::address &&
      std::any_of(value.begin(), value.end(), [](char c) { return c == '@' || c == '/' || c == '"' || c == '\'' || c == '\\'; }))
    return std::string("must be a host name or IP address; put the user in 'user'");
  if (kind == SshSetting::user &&
      !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; }))
    return std::string("may only contain letters, digits, '_', '-' and '.'");
  return std::nullopt;
}

std::vector<std::string> ssh_argv(const SshTarget& t, const std::string& remote_command, bool master) {
  std::vector<std::string> argv{"ssh",
                                // Never a prompt: a password or passphrase question would hang the run.
                                "-o", "BatchMode=yes",
                                "-o", "ConnectTimeout=15",
                                // A host that drops is noticed within ~15 s, not at TCP's pace.
                                "-o", "ServerAliveInterval=5",
                                "-o", "ServerAliveCountMax=3",
                                // Trust on first use; a changed key is refused.
                                "-o", "StrictHostKeyChecking=accept-new",
                                "-o", "LogLevel=ERROR",
                                "-T"};
  if (!t.known_hosts.empty()) argv.insert(argv.end(), {"-o", "UserKnownHostsFile=" + t.known_hosts});
  if (!t.identity_file.empty()) argv.insert(argv.end(), {"-i", t.identity_file, "-o", "IdentitiesOnly=yes"});
  if (t.port) argv.insert(argv.end(), {"-p", std::to_string(t.port)});
  if (!t.user.empty()) argv.insert(argv.end(), {"-l", t.user});
  if (!t.control_path.empty()) {
    argv.insert(argv.end(), {"-o", "ControlPath=" + t.control_path.string()});
    if (master) argv.insert(argv.end(), {"-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-N"});
    else argv.insert(argv.end(), {"-o", "ControlMaster=no"});
  } else if (master) {
    argv.push_back("-N");
  }
  argv.push_back("--");
  argv.push_back(t.address);
  if (!remote_command.empty()) argv.push_back(remote_command);
  return argv;
}

namespace {

std::string last_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line, last;
  while (std::getline(in, line))
    if (!trim(line).empty()) last = trim(line);
  return last;
}

}  // namespace

SshMaster::SshMaster(const SshTarget& target, const std::filesystem::path& log_path) : target_(target), log_path_(log_path) {
  std::error_code ec;
  std::filesystem::remove(target_.control_path, ec);
  process_ = Process::spawn(ProcessSpec{ssh_argv(target_, "", /*master=*/true), {}, log_path, log_path, {}});
}

void SshMaster::wait_ready(std::chrono::milliseconds timeout) {
  if (ready_ && process_.running()) return;
  auto deadline = Clock::now() + timeout;
  while (!std::filesystem::exists(target_.control_path)) {
    if (auto status = process_.poll()) {
      std::string why = last_line(log_path_);
      throw InfraError("cannot reach host " + target_.describe() + " over ssh: " +
                       (why.empty() ? status->describe() : why));
    }
    if (Clock::now() >= deadline) {
      process_.stop(std::chrono::milliseconds(500));
      throw InfraError("cannot reach host " + target_.describe() + " over ssh: no connection within " +
                       std::to_string(timeout.count() / 1000) + " s");
    }
    check_interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ready_ = true;
}

SshMaster::~SshMaster() {
  // Ends the connection and every session still multiplexed over it.
  process_.stop(std::chrono::milliseconds(2000));
  std::error_code ec;
  std::filesystem::remove(target_.control_path, ec);
}

bool SshMaster::alive() { return process_.running(); }

namespace {

// Commands through ssh: a local executor running `ssh ... -- host 'argv'`.
class SshExecutor final : public Executor {
 public:
  SshExecutor(SshTarget target, std::filesystem::path scratch, std::string remote_temp)
      : target_(std::move(target)), local_(make_local_executor(std::move(scratch), "ssh")), remote_temp_(std::move(remote_temp)) {}
  std::string name() const override { return target_.host_name; }
  CommandResult run(const Command& command) override { return local_->run(wrap(command)); }
  std::unique_ptr<Job> start(const Command& command) override { return local_->start(wrap(command)); }
  std::optional<std::string> find_program(const std::string& program) override {
    // `command -v` is the shell's; the name reaches it as "$1", never as code.
    auto r = run(Command{{"sh", "-c", "command -v -- \"$1\"", "sh", program}, std::chrono::seconds(30)});
    std::string path = trim(r.out);
    if (!r.ok() || path.empty() || path.front() != '/') return std::nullopt;
    return path;
  }
  std::string temp_dir() override { return remote_temp_; }

 private:
  Command wrap(const Command& command) const {
    Command c = command;
    c.argv = ssh_argv(target_, remote_command_line(command.argv));
    return c;
  }
  SshTarget target_;
  std::unique_ptr<Executor> local_;
  std::string remote_temp_;
};

}  // namespace

std::unique_ptr<Executor> make_ssh_executor(SshTarget target, std::filesystem::path scratch, std::string remote_temp_dir) {
  return std::make_unique<SshExecutor>(std::move(target), std::move(scratch), std::move(remote_temp_dir));
}

std::filesystem::path control_socket_dir(const std::filesystem::path& preferred) {
  // Room for "/<host name of up to 64 bytes>" under 107 bytes. Only plain
  // characters: ssh expands '%' in a ControlPath and splits it at spaces,
  // Ansible formats it with Python's '%' and quotes it with '"'.
  auto absolute = std::filesystem::absolute(preferred);
  const std::string text = absolute.string();
  const bool plain = std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-' || c == '+';
  });
  if (plain && text.size() + 66 < 107) {
    std::filesystem::create_directories(absolute);
    return absolute;
  }
  std::string tmpl = "/tmp/vmlat-ssh-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw InfraError("cannot create a directory for ssh control sockets in /tmp");
  return tmpl;
}

}  // namespace vmlat
