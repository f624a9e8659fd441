#include "qmp.hpp"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <vmlat/text.hpp>
#include <vmlat/errors.hpp>

namespace vmlat::kvm {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

std::string read_small(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string format_cpus(const std::vector<int>& cpus) {
  std::string s;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(cpus[i]);
    if (j > i) s += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return s;
}

const char* policy_name(unsigned policy) {
  switch (policy) {
    case SCHED_OTHER: return "SCHED_OTHER";
    case SCHED_FIFO: return "SCHED_FIFO";
    case SCHED_RR: return "SCHED_RR";
    case SCHED_BATCH: return "SCHED_BATCH";
    case SCHED_IDLE: return "SCHED_IDLE";
    case 6: return "SCHED_DEADLINE";
    default: return "unknown";
  }
}

int vcpu_host_cpu(const TuningRequest& request, int vcpu) {
  return request.vcpu_pin[static_cast<std::size_t>(vcpu) % request.vcpu_pin.size()];
}

}  // namespace

int connect_unix(const std::string& path, Deadline deadline, const std::function<bool()>& alive) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw InfraError("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  for (;;) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw InfraError(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int err = errno;
    ::close(fd);
    if (!alive()) throw InfraError("QEMU exited before its socket " + path + " accepted a connection");
    if (Clock::now() >= deadline)
      throw InfraError("cannot connect to " + path + ": " + std::strerror(err));
    interruptible_sleep(20ms);
  }
}

// ---------------------------------------------------------------- QMP

QmpClient::QmpClient(int fd, Deadline deadline) : fd_(fd) {
  greeting_ = read_message(deadline);
  if (!greeting_.contains("QMP")) throw InfraError("QMP: unexpected greeting: " + greeting_.dump());
  execute("qmp_capabilities", nullptr, duration_cast<milliseconds>(deadline - Clock::now()) + 1s);
}

QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

json QmpClient::read_message(Deadline deadline) {
  for (;;) {
    const auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      try {
        return json::parse(line);
      } catch (const std::exception& e) {
        throw InfraError("QMP: unparsable message: " + line.substr(0, 200));
      }
    }
    const auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw InfraError("QMP: no answer from QEMU in time");
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
    if (r < 0 && errno != EINTR) throw InfraError(std::string("QMP: poll: ") + std::strerror(errno));
    if (r <= 0) continue;
    char buf[8192];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0) throw InfraError("QMP: QEMU closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InfraError(std::string("QMP: read: ") + std::strerror(errno));
    }
    buf_.append(buf, static_cast<std::size_t>(n));
  }
}

json QmpClient::execute(const std::string& command, const json& arguments, milliseconds timeout) {
  json request{{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  const std::string line = request.dump() + "\n";
  if (::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    throw InfraError("QMP: cannot send " + command + ": " + std::strerror(errno));
  const Deadline deadline = Clock::now() + timeout;
  for (;;) {
    json m = read_message(deadline);
    if (m.contains("event")) continue;
    if (m.contains("error"))
      throw InfraError("QMP " + command + ": " + m["error"].value("desc", m["error"].dump()));
    if (m.contains("return")) return m["return"];
  }
}

void QmpClient::send_only(const std::string& command) noexcept {
  const std::string line = json{{"execute", command}}.dump() + "\n";
  (void)::send(fd_, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// ---------------------------------------------------------------- threads

std::vector<HostThread> qemu_threads(pid_t qemu_pid, const json& cpus_fast) {
  std::vector<HostThread> threads;
  std::set<pid_t> vcpu_tids;
  if (cpus_fast.is_array()) {
    for (const auto& c : cpus_fast) {
      HostThread t;
      t.tid = c.value("thread-id", 0);
      t.vcpu = c.value("cpu-index", -1);
      t.role = "vcpu";
      if (t.tid <= 0) continue;
      t.comm = trim(read_small(fs::path("/proc") / std::to_string(qemu_pid) / "task" / std::to_string(t.tid) / "comm"));
      vcpu_tids.insert(t.tid);
      threads.push_back(t);
    }
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path("/proc") / std::to_string(qemu_pid) / "task", ec)) {
    pid_t tid = 0;
    try {
      tid = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    if (vcpu_tids.count(tid)) continue;
    HostThread t;
    t.tid = tid;
    t.role = "emulator";
    t.comm = trim(read_small(e.path() / "comm"));
    threads.push_back(t);
  }
  std::sort(threads.begin(), threads.end(), [](const HostThread& a, const HostThread& b) {
    if (a.role != b.role) return a.role == "vcpu";
    if (a.vcpu != b.vcpu) return a.vcpu < b.vcpu;
    return a.tid < b.tid;
  });
  return threads;
}

json read_thread_state(pid_t pid, pid_t tid) {
  json state = json::object();
  const std::string stat =
      read_small(fs::path("/proc") / std::to_string(pid) / "task" / std::to_string(tid) / "stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return nullptr;
  std::istringstream rest(stat.substr(close + 2));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  // Field N of proc(5) is fields[N - 3]: 39 processor, 40 rt_priority, 41 policy.
  if (fields.size() < 39) return nullptr;
  const unsigned rt_priority = static_cast<unsigned>(std::stoul(fields[37]));
  const unsigned policy = static_cast<unsigned>(std::stoul(fields[38]));
  state["policy"] = policy_name(policy);
  state["rt_priority"] = rt_priority;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(tid, sizeof set, &set) == 0) {
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    state["cpus"] = format_cpus(cpus);
  } else {
    state["cpus"] = nullptr;
  }
  state["last_cpu"] = std::stoi(fields[36]);
  return state;
}

json apply_tuning(pid_t qemu_pid, const std::vector<HostThread>& threads, const TuningRequest& request) {
  json errors = json::array();
  auto pin = [&](const HostThread& t, const std::vector<int>& cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    if (::sched_setaffinity(t.tid, sizeof set, &set) != 0)
      errors.push_back("sched_setaffinity(" + std::to_string(t.tid) + " " + t.comm + ", " + format_cpus(cpus) +
                       "): " + std::strerror(errno));
  };
  auto prioritize = [&](const HostThread& t, int priority) {
    sched_param p{};
    p.sched_priority = priority;
    if (::sched_setscheduler(t.tid, SCHED_FIFO, &p) != 0)
      errors.push_back("sched_setscheduler(" + std::to_string(t.tid) + " " + t.comm + ", SCHED_FIFO " +
                       std::to_string(priority) + "): " + std::strerror(errno));
  };
  for (const auto& t : threads) {
    if (t.role == "vcpu") {
      if (!request.vcpu_pin.empty() && t.vcpu >= 0) pin(t, {vcpu_host_cpu(request, t.vcpu)});
      if (request.vcpu_priority > 0) prioritize(t, request.vcpu_priority);
    } else {
      if (!request.emulator_pin.empty()) {
        auto cpus = request.emulator_pin;
        std::sort(cpus.begin(), cpus.end());
        pin(t, cpus);
      }
      if (request.emulator_priority > 0) prioritize(t, request.emulator_priority);
    }
  }
  // Read everything back and compare with what was asked.
  json out_threads = json::array();
  int vcpus = 0;
  for (const auto& t : threads) {
    json state = read_thread_state(qemu_pid, t.tid);
    json entry{{"tid", t.tid}, {"comm", t.comm}, {"role", t.role}};
    if (t.role == "vcpu") {
      entry["vcpu"] = t.vcpu;
      ++vcpus;
    }
    if (state.is_null()) {
      entry["state"] = nullptr;  // the thread ended meanwhile
      out_threads.push_back(entry);
      continue;
    }
    entry.update(state);
    const bool is_vcpu = t.role == "vcpu";
    const int want_prio = is_vcpu ? request.vcpu_priority : request.emulator_priority;
    if (want_prio > 0 && (state["policy"] != "SCHED_FIFO" || state["rt_priority"] != want_prio))
      errors.push_back("thread " + std::to_string(t.tid) + " (" + t.comm + ") reads back " +
                       state["policy"].get<std::string>() + " " + std::to_string(state["rt_priority"].get<unsigned>()) +
                       ", not SCHED_FIFO " + std::to_string(want_prio));
    std::string want_cpus;
    if (is_vcpu && !request.vcpu_pin.empty() && t.vcpu >= 0) want_cpus = std::to_string(vcpu_host_cpu(request, t.vcpu));
    if (!is_vcpu && !request.emulator_pin.empty()) {
      auto cpus = request.emulator_pin;
      std::sort(cpus.begin(), cpus.end());
      want_cpus = format_cpus(cpus);
    }
    if (!want_cpus.empty() && state["cpus"] != want_cpus)
      errors.push_back("thread " + std::to_string(t.tid) + " (" + t.comm + ") reads back CPUs " +
                       state["cpus"].dump() + ", not " + want_cpus);
    out_threads.push_back(entry);
  }
  json requested{{"vcpu_pin", request.vcpu_pin},
                 {"vcpu_priority", request.vcpu_priority},
                 {"emulator_pin", request.emulator_pin},
                 {"emulator_priority", request.emulator_priority}};
  return json{{"requested", requested},
              {"vcpu_threads", vcpus},
              {"threads", out_threads},
              {"ok", errors.empty()},
              {"errors", errors}};
}

}  // namespace vmlat::kvm
