// Host-side evidence of a guest's vCPU threads: a sampler that reads, every
// few milliseconds while the guest measures, what the host kernel counts for
// each vCPU thread (run-queue wait, involuntary switches, migrations), the
// interrupts of every host CPU, and which tasks were runnable on a vCPU's CPU
// when its wait grew. The samples go to a JSON-lines file on host
// CLOCK_MONOTONIC; the guest's clock is mapped onto it by clock exchanges, so
// that `vmlat report` can put each of the guest's worst wake-ups beside what
// the host did to that vCPU then (docs/results-format.md, "host-evidence").
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <vmlat/executor.hpp>
#include <vmlat/json.hpp>

namespace vmlat::kvm {

struct EvidenceVcpu {
  int index = 0;  // the vCPU's number: the guest's CPU number
  pid_t tid = 0;  // its host thread
};

// The artifact the samples are saved as, in the cell directory.
inline constexpr const char* kHostEvidenceFile = "host-evidence.jsonl";

class HostEvidence {
 public:
  // The tasks runnable on a vCPU's CPU are listed when the vCPU thread is
  // waiting now (runnable, but on a CPU for less than a quarter of the time
  // since the last sample) or its wait grew by kScanAboveNs (the kernel adds
  // a wait to schedstat only when it ends, so that alone comes too late to
  // see who was in the way); at most once every
  // kScanEveryNs: a scan of /proc costs ~1 ms, and spread out they still
  // catch a burst of a few hundred ms on a host where waits of a
  // millisecond are common (a budget per second would be spent in its
  // first 100 ms).
  static constexpr std::int64_t kScanAboveNs = 1'000'000;
  static constexpr std::int64_t kScanEveryNs = 50'000'000;
  // The file stops growing here (a sample every 10 ms is ~40 MiB an hour).
  static constexpr std::uintmax_t kMaxBytes = 64u << 20;

  // Starts sampling the vCPU threads of process `pid` every `period` into
  // `file` (created), on a thread of its own. `accelerator` ("kvm", "tcg"
  // or "" when unknown) says whether VM exits exist to be counted. The
  // thread runs on `sampler_cpus` (empty: wherever it may): give it the
  // host CPUs the vCPUs are not pinned to, so that it neither disturbs them
  // nor waits behind what delays them.
  HostEvidence(pid_t pid, std::vector<EvidenceVcpu> vcpus, std::filesystem::path file, std::chrono::milliseconds period,
               std::string accelerator, std::vector<int> sampler_cpus = {});
  ~HostEvidence();
  HostEvidence(const HostEvidence&) = delete;
  HostEvidence& operator=(const HostEvidence&) = delete;

  // One clock exchange (host, guest, host; `vmlat-probe --clocks` on both
  // sides): host CLOCK_MONOTONIC = guest CLOCK_MONOTONIC + offset, within
  // half the round trip. Call it before and after the measurement. Never
  // throws; false when either side has no vmlat-probe.
  bool exchange(Executor& host, Executor& guest) noexcept;
  // Stops the sampler (idempotent, never throws).
  void stop() noexcept;
  const std::filesystem::path& file() const { return file_; }
  // {"file", "period_ns", "samples", "vcpus", "clock" {offset_ns,
  // uncertainty_ns, drift_ns, exchanges}, "vm_exits", "scans", ...}.
  json facts() const;

 private:
  void loop() noexcept;
  void sample_once(std::int64_t now_ns);

  struct Previous {
    std::int64_t wait_ns = -1, run_ns = -1, t_ns = 0;
    int cpu = -1;
    std::int64_t migrations = 0;  // counted from CPU changes when /proc/.../sched lacks nr_migrations
  };

  pid_t pid_;
  std::vector<EvidenceVcpu> vcpus_;
  std::filesystem::path file_;
  std::chrono::milliseconds period_;
  std::string accelerator_;
  std::vector<int> sampler_cpus_;
  std::ofstream out_;
  std::vector<std::string> exit_paths_;  // per vCPU: debugfs kvm exits counter, "" when none
  std::map<int, Previous> previous_;
  std::int64_t last_scan_ns_ = 0;
  std::uintmax_t bytes_ = 0;
  bool truncated_ = false;
  std::uint64_t samples_ = 0, scans_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;  // the facts below, written by exchange() and the sampler
  json exchanges_ = json::array();
  std::string error_;
};

// The host CPUs a sampler of vCPU threads should run on: `housekeeping`
// (the emulator threads' CPUs) when given, else the online CPUs no vCPU is
// pinned to; empty when the vCPUs are not pinned or take every CPU.
std::vector<int> sampler_cpus(const std::vector<int>& housekeeping, const std::vector<int>& vcpu_cpus,
                              const std::vector<int>& online);

// One clock reading of `where`: CLOCK_MONOTONIC from `vmlat-probe --clocks`.
std::optional<std::int64_t> read_monotonic(Executor& where, const std::string& probe);

}  // namespace vmlat::kvm
