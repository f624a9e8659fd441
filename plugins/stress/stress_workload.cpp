// The stress workload: runs stress-ng through the placement's executor from
// before the probe starts until after it ends. See README.md.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <vmlat/text.hpp>
#include <vmlat/plugin.hpp>
#include <vmlat/units.hpp>

namespace vmlat::stress {
namespace {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr milliseconds kHelperTimeout = 20s;

// `stress-ng --stressors` of Debian 12's stress-ng 0.15.06.
constexpr std::string_view kKnownStressors[] = {
    "access", "af-alg", "affinity", "aio", "aiol", "apparmor", "alarm", "atomic", "bad-altstack",
    "bad-ioctl", "bigheap", "bind-mount", "binderfs", "branch", "brk", "bsearch", "cache", "cacheline",
    "cap", "chattr", "chdir", "chmod", "chown", "chroot", "clock", "clone", "close", "context",
    "copy-file", "cpu", "cpu-online", "crypt", "cyclic", "daemon", "dccp", "dekker", "dentry", "dev",
    "dev-shm", "dir", "dirdeep", "dirmany", "dnotify", "dup", "dynlib", "efivar", "enosys", "env",
    "epoll", "eventfd", "exec", "exit-group", "fallocate", "fanotify", "far-branch", "fault", "fcntl",
    "fiemap", "fifo", "file-ioctl", "filename", "flock", "flushcache", "fork", "forkheavy", "fp",
    "fp-error", "fpunch", "fsize", "fstat", "full", "funccall", "funcret", "futex", "get", "getdent",
    "getrandom", "goto", "gpu", "handle", "hash", "hdd", "heapsort", "hrtimers", "hsearch", "icache",
    "icmp-flood", "idle-page", "inode-flags", "inotify", "io", "iomix", "ioport", "ioprio", "io-uring",
    "ipsec-mb", "itimer", "jpeg", "judy", "kcmp", "key", "kill", "klog", "kvm", "l1cache", "landlock",
    "lease", "link", "list", "llc-affinity", "loadavg", "locka", "lockbus", "lockf", "lockofd",
    "longjmp", "loop", "lsearch", "madvise", "malloc", "matrix", "matrix-3d", "mcontend", "membarrier",
    "memcpy", "memfd", "memhotplug", "memrate", "memthrash", "mergesort", "mincore", "misaligned",
    "mknod", "mlock", "mlockmany", "mmap", "mmapaddr", "mmapfixed", "mmapfork", "mmaphuge", "mmapmany",
    "mprotect", "mq", "mremap", "msg", "msync", "msyncmany", "munmap", "mutex", "nanosleep", "netdev",
    "netlink-proc", "netlink-task", "nice", "nop", "null", "numa", "oom-pipe", "opcode", "open",
    "pagemove", "pageswap", "pci", "personality", "peterson", "physpage", "pidfd", "ping-sock", "pipe",
    "pipeherd", "pkey", "plugin", "poll", "prctl", "prefetch", "priv-instr", "procfs", "pthread",
    "ptrace", "pty", "qsort", "quota", "race-sched", "radixsort", "randlist", "ramfs", "rawdev",
    "rawpkt", "rawsock", "rawudp", "rdrand", "readahead", "reboot", "regs", "remap", "rename", "resched",
    "resources", "revio", "ring-pipe", "rlimit", "rmap", "rotate", "rseq", "rtc", "schedpolicy", "sctp",
    "seal", "seccomp", "secretmem", "seek", "sem", "sem-sysv", "sendfile", "session", "set", "shellsort",
    "shm", "shm-sysv", "sigabrt", "sigchld", "sigfd", "sigfpe", "sigio", "signal", "signest",
    "sigpending", "sigpipe", "sigq", "sigrt", "sigsegv", "sigsuspend", "sigtrap", "skiplist", "sleep",
    "smi", "sock", "sockabuse", "sockdiag", "sockfd", "sockpair", "sockmany", "softlockup", "spawn",
    "sparsematrix", "splice", "stack", "stackmmap", "str", "stream", "swap", "switch", "symlink",
    "sync-file", "syncload", "sysbadaddr", "syscall", "sysinfo", "sysinval", "sysfs", "tee", "timer",
    "timerfd", "tlb-shootdown", "tmpfs", "touch", "tree", "tsc", "tsearch", "tun", "udp", "udp-flood",
    "umount", "unshare", "uprobe", "urandom", "userfaultfd", "usersyscall", "utime", "vdso", "vecfp",
    "vecmath", "vecshuf", "vecwide", "verity", "vfork", "vforkmany", "vm", "vm-addr", "vm-rw", "vm-segv",
    "vm-splice", "wait", "waitcpu", "watchdog", "wcs", "x86cpuid", "x86syscall", "xattr", "yield",
    "zero", "zlib", "zombie"};

bool known_stressor(std::string_view name) {
  return std::find(std::begin(kKnownStressors), std::end(kKnownStressors), name) != std::end(kKnownStressors);
}

// The "kernel-stress" preset: non-RT processes that enter the kernel and
// raise interrupts as often as they can. -1 means "the `workers` setting".
struct PresetStressor {
  std::string_view name;
  std::int64_t workers;
};
constexpr PresetStressor kKernelStress[] = {
    {"get", -1},     // ~20 cheap get*() system calls in a loop
    {"timer", -1},   // POSIX timers at 1 MHz: timer interrupts and signals
    {"pipe", -1},    // pipe writes/reads: syscalls and wake-ups
    {"sigq", -1},    // sigqueue() to a child: signal delivery
    {"switch", -1},  // two tasks ping-ponging: context switches
    {"hdd", 1},      // small file I/O (--hdd-bytes), block-layer interrupts
    {"iomix", 1},    // mixed small I/O (--iomix-bytes)
};
constexpr std::string_view kPresetIoBytes = "8m";

// The last `lines` non-empty lines of `text`, for error messages.
std::string tail(const std::string& text, std::size_t lines = 5) {
  std::string t = trim(text);
  std::size_t pos = t.size();
  for (std::size_t n = 0; n < lines && pos != std::string::npos && pos > 0; ++n) pos = t.rfind('\n', pos - 1);
  std::string out = pos == std::string::npos ? t : t.substr(pos + 1);
  if (out.size() > 2000) out = "..." + out.substr(out.size() - 2000);
  return out.empty() ? "(no output)" : out;
}

class StressWorkload final : public Workload {
 public:
  void configure(Settings& settings) override {
    preset_ = settings.choice("preset", "kernel-stress", {"kernel-stress", "none"});
    workers_ = settings.integer("workers", 0, 0, 4096);
    stressors_.clear();
    for (const auto& [name, count_text] : settings.string_map("stressors")) {
      if (!known_stressor(name)) {
        std::vector<std::string> all(std::begin(kKnownStressors), std::end(kKnownStressors));
        const std::string hint = did_you_mean(name, all);
        settings.error("stressors", "unknown stressor \"" + name + "\"" +
                                        (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)") +
                                        "; `stress-ng --stressors` lists them");
        continue;
      }
      std::int64_t count = -1;
      try {
        std::size_t used = 0;
        count = std::stoll(count_text, &used);
        if (used != count_text.size()) count = -1;
      } catch (const std::exception&) {
        count = -1;
      }
      if (count < 0 || count > 4096) {
        settings.error("stressors", "stressor \"" + name + "\" needs a worker count from 0 to 4096 (0: one per "
                                    "online CPU), not \"" + count_text + "\"");
        continue;
      }
      stressors_.emplace_back(name, count);
    }
    extra_args_ = settings.string_list("extra_args", {});
    settle_ = settings.duration("settle", 1s, 0ns, std::chrono::minutes(10));
    stop_grace_ = settings.duration("stop_grace", 5s, 0ns, std::chrono::minutes(5));
    if (preset_ == "none" && stressors_.empty() && !settings.has("stressors"))
      settings.error("preset", "preset = \"none\" needs at least one entry in stressors");
    facts_ = json::object();
  }

  void start(Executor& where, CellContext& ctx) override {
    where_ = &where;
    job_.reset();
    const auto program = where.find_program("stress-ng");
    if (!program)
      throw InfraError("stress-ng not found on " + where.name() + ": install the Debian package stress-ng");

    json version = nullptr;
    try {
      auto v = where.run(Command{{*program, "--version"}, kHelperTimeout});
      if (v.ok() && !trim(v.out).empty()) version = trim(v.out);
    } catch (const InfraError&) {
    }

    // stress-ng puts its temporary files in the current directory unless
    // told otherwise: give it a scratch directory in the target's temp dir
    // (inside the run's work directory on this machine, so nothing is left
    // outside the run directory even if vmlat is killed).
    const std::string parent = where.temp_dir();
    auto made = where.run(Command{{"mktemp", "-d", "-p", parent, "vmlat-stress.XXXXXX"}, kHelperTimeout});
    temp_dir_ = trim(made.out);
    if (!made.ok() || temp_dir_.rfind(parent + "/vmlat-stress.", 0) != 0) {
      temp_dir_.clear();
      throw InfraError("stress: mktemp -d on " + where.name() + " failed: " + made.describe());
    }

    argv_ = {*program, "--timeout", "0", "--metrics-brief", "--temp-path", temp_dir_};
    bool any = false;
    bool uses_hdd = false, uses_iomix = false;
    auto add = [&](std::string_view name, std::int64_t count) {
      argv_.push_back("--" + std::string(name));
      argv_.push_back(std::to_string(count));
      any = true;
      uses_hdd |= name == "hdd";
      uses_iomix |= name == "iomix";
    };
    auto overridden = [&](std::string_view name) {
      return std::any_of(stressors_.begin(), stressors_.end(), [&](const auto& s) { return s.first == name; });
    };
    if (preset_ == "kernel-stress") {
      for (const auto& s : kKernelStress)
        if (!overridden(s.name)) add(s.name, s.workers < 0 ? workers_ : s.workers);
    }
    for (const auto& [name, count] : stressors_) add(name, count);
    if (!any) throw InfraError("stress: no stressors to run (preset = \"none\" and no stressors)");
    if (preset_ == "kernel-stress") {
      if (uses_hdd) argv_.insert(argv_.end(), {"--hdd-bytes", std::string(kPresetIoBytes)});
      if (uses_iomix) argv_.insert(argv_.end(), {"--iomix-bytes", std::string(kPresetIoBytes)});
    }
    argv_.insert(argv_.end(), extra_args_.begin(), extra_args_.end());

    facts_ = json{{"placement", where.name()},
                  {"preset", preset_},
                  {"stress_ng_version", version},
                  {"argv", argv_}};

    ctx.log().info("stress: starting stress-ng on " + where.name());
    // The job runs until stop(); the timeout is only a safety net.
    const auto limit = duration_cast<milliseconds>(ctx.cell().duration) * 2 + std::chrono::hours(1);
    try {
      job_ = where.start(Command{argv_, limit});
      interruptible_sleep(duration_cast<milliseconds>(settle_));
    } catch (...) {
      // Interrupted (or not started): leave nothing behind for stop() to find.
      if (job_) {
        auto result = job_->stop(duration_cast<milliseconds>(stop_grace_));
        try {
          save_output(ctx, result);
        } catch (...) {
        }
      }
      job_.reset();
      remove_temp_dir();
      throw;
    }
    if (!job_->running()) {
      auto result = job_->stop(duration_cast<milliseconds>(stop_grace_));
      job_.reset();
      save_output(ctx, result);
      remove_temp_dir();
      throw InfraError("stress-ng exited within " + format_duration(settle_) + " of its start on " + where.name() +
                       " (" + result.describe() + "):\n" + tail(result.err));
    }
  }

  void stop(CellContext& ctx) override {
    if (!job_) {
      remove_temp_dir();
      return;
    }
    const bool was_running = job_->running();
    // Job::stop signals stress-ng's main process alone first, so that it
    // shuts its stressors down cleanly (a group-wide SIGTERM makes it report
    // "corrupted bogo-ops counter" and exit 2).
    auto result = job_->stop(duration_cast<milliseconds>(stop_grace_));
    job_.reset();
    save_output(ctx, result);
    remove_temp_dir();
    facts_["stop_status"] = result.describe();
    if (!was_running)
      throw InfraError("stress-ng had exited before it was stopped (" + result.describe() + "):\n" +
                       tail(result.err));
    if (result.signal == 9)
      ctx.log().warn("stress: stress-ng ignored SIGTERM for " + format_duration(stop_grace_) + " and was killed");
  }

  json facts() const override { return facts_; }

 private:
  static void save_output(CellContext& ctx, const CommandResult& result) {
    ctx.save_artifact("stress-ng.out", result.out);
    ctx.save_artifact("stress-ng.err", result.err);
  }

  void remove_temp_dir() noexcept {
    if (temp_dir_.empty() || where_ == nullptr) return;
    try {
      PhaseScope cleanup("stress-cleanup", Clock::now() + kHelperTimeout, /*interruptible=*/false);
      where_->run(Command{{"rm", "-rf", "--", temp_dir_}, kHelperTimeout});
    } catch (...) {
    }
    temp_dir_.clear();
  }

  // Settings.
  std::string preset_ = "kernel-stress";
  std::int64_t workers_ = 0;
  std::vector<std::pair<std::string, std::int64_t>> stressors_;
  std::vector<std::string> extra_args_;
  nanoseconds settle_ = 1s;
  nanoseconds stop_grace_ = 5s;

  // State of a cell.
  Executor* where_ = nullptr;
  std::unique_ptr<Job> job_;
  std::string temp_dir_;
  std::vector<std::string> argv_;
  json facts_ = json::object();
};

}  // namespace
}  // namespace vmlat::stress

VMLAT_PLUGIN(vmlat::stress::StressWorkload, "stress", "workload", "0.1.0",
             "stress-ng load: by default syscalls, timers, signals, context switches and small I/O")
