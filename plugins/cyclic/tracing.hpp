// ftrace on the probe's target for trace_above: armed by vmlat-probe
// --trace-arm before the engine runs, the end of the trace read back after,
// restored (--trace-disarm) always.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <vmlat/context.hpp>
#include <vmlat/executor.hpp>
#include <vmlat/json.hpp>

namespace vmlat::cyclic {

struct TraceSettings {
  std::chrono::nanoseconds above{0};  // 0: no tracing
  std::vector<std::string> events;    // "system" or "system:event" ("sched:sched_switch", "irq")
  std::uint64_t buffer_kb = 0;        // ring buffer per CPU
};

// The most of a trace read back into the cell directory: the end of it,
// where a stopped trace holds the spike (a guest's agent caps output at 4 MiB).
inline constexpr std::uint64_t kTraceReadBytes = 3u << 20;

class TargetTrace {
 public:
  // `vmlat-probe --trace-arm` on `target`: only the given events, trace
  // clock CLOCK_MONOTONIC (trace timestamps are the probe's), tracing on.
  // Throws InfraError when vmlat-probe is missing or arming fails.
  TargetTrace(Executor& target, const TraceSettings& settings, CellContext& ctx);
  // Restores what arming changed (uninterruptible; never throws).
  ~TargetTrace();
  TargetTrace(const TargetTrace&) = delete;
  TargetTrace& operator=(const TargetTrace&) = delete;

  // The tracefs mount on the target (for trace_marker / tracing_on).
  const std::string& tracefs() const { return tracefs_; }
  json facts() const { return facts_; }
  // Saves the last kTraceReadBytes of the trace as cell artifact `name`.
  // Returns false (with a warning) when it cannot be read.
  bool save(const std::string& name);

 private:
  void disarm() noexcept;
  Executor& target_;
  CellContext& ctx_;
  std::string probe_;
  std::string restore_;  // "CLOCK:KB" for --trace-disarm; empty: nothing to undo
  std::string tracefs_;
  json facts_;
};

// The tracefs mount point of `target` from /proc/mounts ("" if none).
std::string find_tracefs(Executor& target);

// Checks event arguments: "system" or "system:event" made of
// [a-z0-9_*]. Returns what is wrong, or "".
std::string check_trace_event(const std::string& event);

}  // namespace vmlat::cyclic

namespace vmlat::cyclic {

// The host side of a VM target: ftrace instance "vmlat-host" on the host
// (vmlat-probe --trace-arm --trace-instance) recording the scheduling and
// KVM events of the vCPU threads (CellContext::target_threads()) while the
// guest measures; afterwards the events around a guest spike are cut out.
class HostTrace {
 public:
  static constexpr const char* kInstance = "vmlat-host";
  // Window kept around the spike, in host CLOCK_MONOTONIC.
  static constexpr std::int64_t kBeforeNs = 20'000'000, kAfterNs = 5'000'000;

  HostTrace(Executor& host, const std::vector<int>& threads, std::uint64_t buffer_kb, CellContext& ctx);
  ~HostTrace();
  HostTrace(const HostTrace&) = delete;
  HostTrace& operator=(const HostTrace&) = delete;

  json facts() const { return facts_; }
  // Maps `guest_mono_ns` (a spike on `guest`) to host time through one
  // clock exchange, cuts the host trace to the window around it and saves
  // it as `name`. Returns false (with a warning) when it cannot.
  bool save_around(Executor& guest, std::int64_t guest_mono_ns, const std::string& name);
  // One clock exchange with `guest` (vmlat-probe --clocks on both sides);
  // save_around() uses the most precise one (call it before measuring too).
  bool exchange(Executor& guest);

 private:
  struct Exchange {
    std::int64_t offset_ns, uncertainty_ns;  // host mono - guest mono, +- uncertainty
  };
  void disarm() noexcept;
  std::optional<Exchange> best_;
  Executor& host_;
  CellContext& ctx_;
  std::string probe_, tracefs_;
  bool armed_ = false;
  json facts_;
};

// Lines of an ftrace text trace whose timestamp lies in [from_s, to_s]
// (header lines starting with '#' are kept); `kept` counts the events.
std::string trace_window(const std::string& trace, double from_s, double to_s, std::size_t* kept);

}  // namespace vmlat::cyclic
