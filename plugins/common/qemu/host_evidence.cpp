#include "host_evidence.hpp"

#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include <vmlat/errors.hpp>
#include <vmlat/proc_thread.hpp>
#include <vmlat/text.hpp>

namespace vmlat::kvm {

namespace fs = std::filesystem;

namespace {

std::int64_t monotonic_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The fields of /proc/.../stat after "(comm)": fields[N - 3] is field N of proc(5).
struct Stat {
  std::string comm;
  char state = '?';
  int cpu = -1;
  unsigned rt_priority = 0, policy = 0;
};
std::optional<Stat> parse_stat(const std::string& text) {
  const auto open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  Stat s;
  s.comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  std::vector<std::string> f;
  std::string w;
  while (rest >> w) f.push_back(w);
  if (f.size() < 39) return std::nullopt;
  s.state = f[0].empty() ? '?' : f[0][0];
  s.cpu = std::atoi(f[36].c_str());
  s.rt_priority = static_cast<unsigned>(std::strtoul(f[37].c_str(), nullptr, 10));
  s.policy = static_cast<unsigned>(std::strtoul(f[38].c_str(), nullptr, 10));
  return s;
}

const char* policy_text(unsigned p) {
  switch (p) {
    case 0: return "OTHER";
    case 1: return "FIFO";
    case 2: return "RR";
    case 3: return "BATCH";
    case 5: return "IDLE";
    case 6: return "DEADLINE";
    default: return "?";
  }
}

// Per host CPU, the sum of every per-CPU interrupt counter of /proc/interrupts.
std::vector<std::int64_t> interrupt_totals() {
  const std::string text = read_proc_file("/proc/interrupts");
  std::istringstream in(text);
  std::string header;
  std::getline(in, header);
  std::size_t ncpu = 0;
  {
    std::istringstream h(header);
    std::string w;
    while (h >> w) ++ncpu;
  }
  std::vector<std::int64_t> totals(ncpu, 0);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const char* p = line.c_str() + colon + 1;
    for (std::size_t c = 0; c < ncpu; ++c) {
      char* end = nullptr;
      long long v = std::strtoll(p, &end, 10);
      if (end == p) break;  // ERR/MIS lines have one column
      totals[c] += v;
      p = end;
    }
  }
  return totals;
}

// KVM's per-vCPU exit counters in debugfs (/sys/kernel/debug/kvm/PID-FD/vcpuN/exits),
// where the host kernel has KVM and debugfs is mounted.
std::vector<std::string> kvm_exit_paths(pid_t pid, const std::vector<EvidenceVcpu>& vcpus) {
  std::vector<std::string> out(vcpus.size());
  std::error_code ec;
  const std::string prefix = std::to_string(pid) + "-";
  for (const auto& e : fs::directory_iterator("/sys/kernel/debug/kvm", ec)) {
    if (e.path().filename().string().rfind(prefix, 0) != 0) continue;
    for (std::size_t i = 0; i < vcpus.size(); ++i) {
      auto p = e.path() / ("vcpu" + std::to_string(vcpus[i].index)) / "exits";
      if (fs::exists(p, ec)) out[i] = p.string();
    }
  }
  return out;
}

}  // namespace

std::optional<std::int64_t> read_monotonic(Executor& where, const std::string& probe) {
  auto r = where.run(Command{{probe, "--clocks"}, std::chrono::seconds(20)});
  long long m = 0, real = 0;
  char tail = 0;
  if (!r.ok() || std::sscanf(r.out.c_str(), "%lld %lld %c", &m, &real, &tail) != 2) return std::nullopt;
  return m;
}

std::vector<int> sampler_cpus(const std::vector<int>& housekeeping, const std::vector<int>& vcpu_cpus,
                              const std::vector<int>& online) {
  if (!housekeeping.empty()) return housekeeping;
  if (vcpu_cpus.empty()) return {};
  std::vector<int> out;
  for (int c : online)
    if (std::find(vcpu_cpus.begin(), vcpu_cpus.end(), c) == vcpu_cpus.end()) out.push_back(c);
  return out;
}

HostEvidence::HostEvidence(pid_t pid, std::vector<EvidenceVcpu> vcpus, fs::path file, std::chrono::milliseconds period,
                           std::string accelerator, std::vector<int> sampler_cpus)
    : pid_(pid),
      vcpus_(std::move(vcpus)),
      file_(std::move(file)),
      period_(period),
      accelerator_(std::move(accelerator)),
      sampler_cpus_(std::move(sampler_cpus)) {
  out_.open(file_, std::ios::binary | std::ios::trunc);
  if (!out_) throw InfraError("host evidence: cannot create " + file_.string());
  if (accelerator_ == "kvm") exit_paths_ = kvm_exit_paths(pid_, vcpus_);
  exit_paths_.resize(vcpus_.size());
  json vcpus_json = json::array();
  for (const auto& v : vcpus_) vcpus_json.push_back(json{{"index", v.index}, {"tid", v.tid}});
  const std::string head = json{{"vmlat_host_evidence", 1},
                                {"clock", "CLOCK_MONOTONIC"},
                                {"pid", pid_},
                                {"period_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(period_).count()},
                                {"vcpus", vcpus_json},
                                {"host_cpus", ::sysconf(_SC_NPROCESSORS_CONF)}}
                               .dump() +
                           "\n";
  out_ << head;
  bytes_ += head.size();
  thread_ = std::thread([this] { loop(); });
}

HostEvidence::~HostEvidence() { stop(); }

void HostEvidence::stop() noexcept {
  if (thread_.joinable()) {
    stop_ = true;
    thread_.join();
  }
  try {
    out_.flush();
    out_.close();
  } catch (...) {
  }
}

void HostEvidence::loop() noexcept {
  if (!sampler_cpus_.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : sampler_cpus_)
      if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
      std::lock_guard lock(mutex_);
      error_ = std::string("the sampler could not be pinned: ") + std::strerror(errno);
    }
  }
  // Absolute deadlines: a late sample does not shift the later ones.
  timespec next{};
  ::clock_gettime(CLOCK_MONOTONIC, &next);
  const long period_ns = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(period_).count());
  while (!stop_) {
    try {
      sample_once(monotonic_now());
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      error_ = e.what();
      return;
    }
    next.tv_nsec += period_ns;
    while (next.tv_nsec >= 1'000'000'000) {
      next.tv_nsec -= 1'000'000'000;
      ++next.tv_sec;
    }
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
  }
  // A last sample: the interval after the last periodic one is covered too.
  try {
    sample_once(monotonic_now());
  } catch (...) {
  }
}

void HostEvidence::sample_once(std::int64_t now_ns) {
  if (truncated_) return;
  json v = json::array();
  std::vector<std::pair<std::size_t, int>> grew;  // (vcpu position, host CPU) whose wait grew
  for (std::size_t i = 0; i < vcpus_.size(); ++i) {
    const std::string dir = "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(vcpus_[i].tid) + "/";
    const auto schedstat = read_schedstat(dir);
    if (!schedstat) {
      v.push_back(nullptr);  // the thread has ended (the guest is going down)
      continue;
    }
    const long long run = schedstat->run_ns, wait = schedstat->wait_ns;
    const std::string status = read_proc_file(dir + "status");
    const std::string sched = read_proc_file(dir + "sched");
    auto stat = parse_stat(read_proc_file(dir + "stat"));
    Previous& prev = previous_[vcpus_[i].index];
    const int cpu = stat ? stat->cpu : -1;
    std::int64_t migrations = 0;
    if (auto m = proc_keyed_value(sched, "se.nr_migrations")) {
      migrations = *m;
    } else {
      if (prev.cpu >= 0 && cpu >= 0 && cpu != prev.cpu) ++prev.migrations;
      migrations = prev.migrations;
    }
    json e{{"wait", wait},
           {"run", run},
           {"vol", proc_keyed_value(status, "voluntary_ctxt_switches").value_or(-1)},
           {"invol", proc_keyed_value(status, "nonvoluntary_ctxt_switches").value_or(-1)},
           {"mig", migrations},
           {"cpu", cpu},
           {"state", stat ? std::string(1, stat->state) : std::string("?")}};
    if (!exit_paths_[i].empty()) {
      const std::string exits = read_proc_file(exit_paths_[i]);
      e["exits"] = exits.empty() ? json(nullptr) : json(std::strtoll(exits.c_str(), nullptr, 10));
    }
    const bool waiting_now = prev.run_ns >= 0 && stat && stat->state == 'R' && (run - prev.run_ns) * 4 < now_ns - prev.t_ns;
    const bool waited = prev.wait_ns >= 0 && wait - prev.wait_ns >= kScanAboveNs;
    if ((waiting_now || waited) && cpu >= 0) grew.emplace_back(i, cpu);
    prev.wait_ns = wait;
    prev.run_ns = run;
    prev.t_ns = now_ns;
    prev.cpu = cpu;
    v.push_back(std::move(e));
  }
  json line{{"t", now_ns}, {"vcpu", std::move(v)}, {"irq", interrupt_totals()}};

  // Who else was runnable on those CPUs: one pass over /proc, rate-limited.
  if (!grew.empty() && (scans_ == 0 || now_ns - last_scan_ns_ >= kScanEveryNs)) {
    last_scan_ns_ = now_ns;
    ++scans_;
    std::map<int, json> on_cpu;
    for (const auto& [pos, cpu] : grew) on_cpu[cpu] = json::array();
    const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
    std::set<pid_t> ours;
    for (const auto& vc : vcpus_) ours.insert(vc.tid);
    if (DIR* procs = ::opendir("/proc")) {
      while (dirent* p = ::readdir(procs)) {
        if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
        const std::string task_dir = std::string("/proc/") + p->d_name + "/task";
        DIR* tasks = ::opendir(task_dir.c_str());
        if (!tasks) continue;
        while (dirent* t = ::readdir(tasks)) {
          if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
          const pid_t tid = static_cast<pid_t>(std::atoi(t->d_name));
          if (tid == self || ours.count(tid)) continue;
          auto s = parse_stat(read_proc_file(task_dir + "/" + t->d_name + "/stat"));
          if (!s || s->state != 'R') continue;
          auto it = on_cpu.find(s->cpu);
          if (it == on_cpu.end()) continue;
          it->second.push_back(json{{"pid", std::atoi(p->d_name)},
                                    {"tid", tid},
                                    {"comm", s->comm},
                                    {"policy", policy_text(s->policy)},
                                    {"prio", s->rt_priority}});
        }
        ::closedir(tasks);
      }
      ::closedir(procs);
    }
    json behind = json::array();
    for (const auto& [pos, cpu] : grew) {
      json tasks = on_cpu[cpu];
      // Real-time tasks first: they are the ones a vCPU cannot get past.
      std::stable_sort(tasks.begin(), tasks.end(), [](const json& a, const json& b) {
        const bool ra = a["policy"] == "FIFO" || a["policy"] == "RR" || a["policy"] == "DEADLINE";
        const bool rb = b["policy"] == "FIFO" || b["policy"] == "RR" || b["policy"] == "DEADLINE";
        if (ra != rb) return ra;
        return a["prio"].get<unsigned>() > b["prio"].get<unsigned>();
      });
      if (tasks.size() > 5) tasks.erase(tasks.begin() + 5, tasks.end());
      behind.push_back(json{{"vcpu", vcpus_[pos].index}, {"cpu", cpu}, {"tasks", tasks}});
    }
    line["behind"] = behind;
  }

  const std::string text = line.dump() + "\n";
  if (bytes_ + text.size() > kMaxBytes) {
    truncated_ = true;
    return;
  }
  out_ << text;
  bytes_ += text.size();
  ++samples_;
}

bool HostEvidence::exchange(Executor& host, Executor& guest) noexcept {
  try {
    auto host_probe = host.find_program("vmlat-probe");
    auto guest_probe = guest.find_program("vmlat-probe");
    if (!host_probe || !guest_probe) {
      std::lock_guard lock(mutex_);
      if (error_.empty())
        error_ = std::string("no vmlat-probe ") + (!host_probe ? "on the host" : "in the guest") +
                 ": the guest's clock cannot be mapped onto the host's";
      return false;
    }
    auto before = read_monotonic(host, *host_probe);
    auto guest_now = before ? read_monotonic(guest, *guest_probe) : std::nullopt;
    auto after = guest_now ? read_monotonic(host, *host_probe) : std::nullopt;
    if (!after) return false;
    // The guest's read lies between the host's two: offset = midpoint - guest.
    const std::int64_t offset = *before + (*after - *before) / 2 - *guest_now;
    std::lock_guard lock(mutex_);
    exchanges_.push_back(json{{"host_ns", *before}, {"offset_ns", offset}, {"uncertainty_ns", (*after - *before) / 2}});
    return true;
  } catch (...) {
    return false;
  }
}

json HostEvidence::facts() const {
  std::lock_guard lock(mutex_);
  json vcpus = json::array();
  for (const auto& v : vcpus_) vcpus.push_back(json{{"index", v.index}, {"tid", v.tid}});
  json clock = nullptr;
  if (!exchanges_.empty()) {
    // The most precise exchange maps; the spread of all of them (clock
    // drift between guest and host over the cell) widens every interval.
    const json* best = &exchanges_[0];
    std::int64_t lo = exchanges_[0]["offset_ns"], hi = lo;
    for (const auto& e : exchanges_) {
      if (e["uncertainty_ns"].get<std::int64_t>() < (*best)["uncertainty_ns"].get<std::int64_t>()) best = &e;
      lo = std::min(lo, e["offset_ns"].get<std::int64_t>());
      hi = std::max(hi, e["offset_ns"].get<std::int64_t>());
    }
    clock = json{{"offset_ns", (*best)["offset_ns"]},
                 {"uncertainty_ns", (*best)["uncertainty_ns"]},
                 {"drift_ns", hi - lo},
                 {"exchanges", exchanges_}};
  }
  bool exits = false;
  for (const auto& p : exit_paths_) exits = exits || !p.empty();
  std::string vm_exits = exits ? "counted: KVM's per-vCPU exits in debugfs"
                         : accelerator_ == "tcg"
                             ? "not countable: under TCG there are no VM exits (QEMU emulates the guest in its vCPU threads)"
                             : "not countable: no /sys/kernel/debug/kvm/<pid>-*/vcpuN/exits (debugfs not mounted?)";
  json f{{"file", kHostEvidenceFile},
         {"clock", clock},
         {"period_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(period_).count()},
         {"samples", samples_},
         {"sampler_cpus", sampler_cpus_},
         {"scans", scans_},
         {"vcpus", vcpus},
         {"vm_exits", vm_exits},
         {"attribution",
          "tasks in state R on the vCPU's host CPU at samples where the vCPU thread was waiting (runnable, little "
          "time on a CPU since the last sample) or its run-queue wait grew by >= 1 ms; at most one scan every 50 ms "
          "(a sample, not a trace: a task that ran and left between two scans is not named)"},
         {"truncated", truncated_}};
  if (!error_.empty()) f["error"] = error_;
  return f;
}

}  // namespace vmlat::kvm
