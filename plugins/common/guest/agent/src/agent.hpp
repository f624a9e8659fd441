// vmlat-guest-agent: runs inside a vmlat guest (as /init's child) and executes
// commands for the host over a virtio-serial port, one vmlat frame per message.
// Protocol: see plugins/common/guest/agent/README.md.
#pragma once

#include <csignal>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <vmlat/frame.hpp>

namespace vmlat::agent {

inline constexpr const char* kAgentVersion = "0.2.0";
inline constexpr const char* kDefaultPortName = "org.vmlat.0";

struct Options {
  std::string port;                       // explicit device / socket path; empty: discover
  std::string port_name = kDefaultPortName;
  int port_timeout_ms = 60000;            // how long to wait for the port to appear
  bool poweroff = true;                   // power the machine off on `shutdown`
  std::string workdir = "/tmp/vmlat-agent";
  std::size_t output_cap = std::size_t{4} << 20;  // per stream, bytes
  int default_term_grace_ms = 2000;       // SIGTERM -> SIGKILL on timeout / shutdown
};

using Clock = std::chrono::steady_clock;

// Finds the virtio-serial port called `name` by reading /sys/class/virtio-ports/*/name;
// returns "/dev/<vportNpM>" or an empty string.
std::string find_virtio_port(const std::string& sysfs_root, const std::string& name);

class Agent {
 public:
  explicit Agent(Options opts);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens the port and serves until `shutdown` (returns 0 after powering off
  // fails or when poweroff is disabled) or a fatal error (returns non-zero).
  int run();

 private:
  enum class PortKind { VirtioPort, Socket, Tty, Other };

  struct Child {
    std::int64_t id = 0;
    pid_t pid = -1;
    bool background = false;
    bool timed_out = false;
    bool stop_requested = false;
    int term_grace_ms = 2000;                   // SIGTERM -> SIGKILL after a timeout
    Clock::time_point started;
    std::optional<Clock::time_point> deadline;  // timeout_ms
    std::optional<Clock::time_point> kill_at;   // SIGKILL after SIGTERM grace
    std::string out_path, err_path;
    off_t out_read = 0;    // stdout bytes already sent in `output` replies
    off_t out_punched = 0; // ... and released from the file
  };

  // --- port
  bool open_port();
  void check_connection();
  void on_connected();
  void on_disconnected();
  void read_port();
  void write_port();
  void flush_blocking(std::chrono::milliseconds limit);

  // --- messages
  void queue(const std::string& kind, const nlohmann::json& payload);
  void send_error(const std::string& message, const nlohmann::json* id = nullptr);
  nlohmann::json hello() const;
  void handle_frame(const frame::Frame& f);
  void handle_exec(const nlohmann::json& req);
  void handle_stop(const nlohmann::json& req);
  void handle_read(const nlohmann::json& req);
  void handle_shutdown(const nlohmann::json& req);

  // --- children
  void reap();
  void finish_child(Child& c, int status);
  void check_timers();
  void terminate_group(Child& c, int grace_ms, int first_signal = SIGTERM);
  std::vector<std::int64_t> kill_all_children();
  std::optional<int> next_timeout_ms() const;
  std::string read_capped(const std::string& path, bool* truncated, off_t offset = 0) const;
  // Up to `max` bytes of c's stdout after what was read, ending on a UTF-8
  // character boundary; the part read is released from the file.
  std::string read_stdout(Child& c, std::size_t max);

  Options opts_;
  std::string port_path_;
  PortKind kind_ = PortKind::Other;
  int port_fd_ = -1;
  int signal_fd_ = -1;
  bool connected_ = false;
  bool stopping_ = false;
  int exit_code_ = 0;

  frame::Decoder decoder_;
  std::deque<std::string> out_;  // whole frames; the front one may be partly written
  std::size_t out_offset_ = 0;   // bytes of out_.front() already written

  std::map<pid_t, Child> children_;        // by pid
  std::map<std::int64_t, pid_t> by_id_;    // running children by request id
  std::uint64_t frames_in_ = 0, frames_out_ = 0;
};

}  // namespace vmlat::agent
