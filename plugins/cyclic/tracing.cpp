#include "tracing.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/json.hpp>
#include <vmlat/log.hpp>
#include <vmlat/text.hpp>

namespace vmlat::cyclic {

namespace {
using namespace std::chrono_literals;
constexpr std::chrono::milliseconds kTraceTimeout = 60s;
}  // namespace

std::string check_trace_event(const std::string& event) {
  if (event.empty()) return "an empty event name";
  std::size_t colons = 0;
  for (char c : event) {
    if (c == ':') {
      ++colons;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '*'))
      return "'" + event + "' is not an ftrace event: write \"system\" or \"system:event\" (letters a-z, digits, _ and *)";
  }
  if (colons > 1 || event.front() == ':' || event.back() == ':')
    return "'" + event + "' is not an ftrace event: write \"system\" or \"system:event\"";
  return {};
}

std::string find_tracefs(Executor& target) {
  auto mounts = target.run(Command{{"cat", "/proc/mounts"}, 20s});
  if (!mounts.ok()) return {};
  std::istringstream in(mounts.out);
  std::string best;
  for (std::string line; std::getline(in, line);) {
    std::istringstream w(line);
    std::string dev, dir, type;
    w >> dev >> dir >> type;
    if (type != "tracefs") continue;
    if (dir == "/sys/kernel/tracing") return dir;
    if (best.empty()) best = dir;
  }
  return best;
}

TargetTrace::TargetTrace(Executor& target, const TraceSettings& settings, CellContext& ctx)
    : target_(target), ctx_(ctx) {
  // vmlat-probe arms ftrace itself: trace-cmd insists on writing
  // /proc/sys/kernel/ftrace_enabled, which containers and some VMs refuse.
  auto program = target.find_program("vmlat-probe");
  if (!program)
    throw InfraError("trace_above needs vmlat-probe on " + target.name() +
                     " to arm ftrace (it is built into build/libexec; guest images include it)");
  probe_ = *program;
  std::vector<std::string> argv{probe_, "--trace-arm", "--trace-buffer-kb", std::to_string(settings.buffer_kb)};
  for (const auto& e : settings.events) argv.insert(argv.end(), {"--trace-event", e});
  facts_ = json{{"argv", argv}, {"clock", "mono"}, {"buffer_kb", settings.buffer_kb}, {"events", settings.events}};
  ctx.log().info("cyclic: arming ftrace on " + target.name() + " (trace_above)");
  auto armed = target.run(Command{argv, kTraceTimeout});
  if (!armed.ok()) {
    restore_ = "local:";  // leave nothing half-armed behind
    disarm();
    throw InfraError("arming ftrace on " + target.name() + " failed: " + armed.describe());
  }
  restore_ = trim(armed.out);
  tracefs_ = find_tracefs(target);
  if (tracefs_.empty()) {
    disarm();
    throw InfraError("no tracefs mounted on " + target.name() + " after arming ftrace");
  }
  facts_["tracefs"] = tracefs_;
}

bool TargetTrace::save(const std::string& name) {
  PhaseScope scope("cyclic-trace-read", Clock::now() + kTraceTimeout, /*interruptible=*/false);
  auto read = target_.run(Command{{"tail", "-c", std::to_string(kTraceReadBytes), tracefs_ + "/trace"}, kTraceTimeout});
  if (!read.ok()) {
    ctx_.log().warn("cyclic: cannot read the trace on " + target_.name() + ": " + read.describe());
    return false;
  }
  ctx_.save_artifact(name, read.out);
  return true;
}

void TargetTrace::disarm() noexcept {
  if (restore_.empty()) return;
  try {
    PhaseScope scope("cyclic-trace-reset", Clock::now() + kTraceTimeout, /*interruptible=*/false);
    auto r = target_.run(Command{{probe_, "--trace-disarm", restore_}, kTraceTimeout});
    if (!r.ok()) ctx_.log().warn("cyclic: restoring ftrace on " + target_.name() + " failed: " + r.describe());
  } catch (...) {
    ctx_.log().warn("cyclic: restoring ftrace on " + target_.name() + " failed");
  }
  restore_.clear();
}

TargetTrace::~TargetTrace() { disarm(); }

}  // namespace vmlat::cyclic

namespace vmlat::cyclic {

namespace {

// "MONO REAL" of vmlat-probe --clocks on `where`.
bool read_clocks(Executor& where, const std::string& probe, std::int64_t* mono) {
  auto r = where.run(Command{{probe, "--clocks"}, std::chrono::seconds(20)});
  long long m = 0, real = 0;
  char tail = 0;
  if (!r.ok() || std::sscanf(r.out.c_str(), "%lld %lld %c", &m, &real, &tail) != 2) return false;
  *mono = m;
  return true;
}

}  // namespace

std::string trace_window(const std::string& trace, double from_s, double to_s, std::size_t* kept) {
  std::string out;
  *kept = 0;
  std::size_t pos = 0;
  while (pos < trace.size()) {
    auto nl = trace.find('\n', pos);
    if (nl == std::string::npos) nl = trace.size();
    const std::string line = trace.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("#", 0) == 0) {
      out += line + "\n";
      continue;
    }
    // "  comm-123  [001] d..2.  6757.538531: event: ..."
    const auto bracket = line.find("] ");
    const auto colon = bracket == std::string::npos ? std::string::npos : line.find(": ", bracket);
    if (colon == std::string::npos) continue;
    const auto space = line.rfind(' ', colon);
    double ts = 0;
    if (std::sscanf(line.c_str() + space + 1, "%lf", &ts) != 1) continue;
    if (ts < from_s || ts > to_s) continue;
    out += line + "\n";
    ++*kept;
  }
  return out;
}

HostTrace::HostTrace(Executor& host, const std::vector<int>& threads, std::uint64_t buffer_kb, CellContext& ctx)
    : host_(host), ctx_(ctx) {
  auto program = host.find_program("vmlat-probe");
  if (!program) throw InfraError("trace_above on a VM needs vmlat-probe on the host to trace the vCPU threads");
  probe_ = *program;
  tracefs_ = find_tracefs(host);
  std::vector<std::string> events = {"sched:sched_switch", "sched:sched_wakeup", "sched:sched_waking"};
  // KVM's events exist only where the host kernel has KVM.
  auto available = host.run(Command{{"cat", (tracefs_.empty() ? "/sys/kernel/tracing" : tracefs_) + "/available_events"},
                                    kTraceTimeout});
  for (const char* e : {"kvm:kvm_exit", "kvm:kvm_entry"})
    if (available.ok() && available.out.find(std::string(e) + "\n") != std::string::npos) events.push_back(e);
  std::vector<std::string> argv{probe_, "--trace-arm", "--trace-instance", kInstance, "--trace-buffer-kb",
                                std::to_string(buffer_kb)};
  for (const auto& e : events) argv.insert(argv.end(), {"--trace-event", e});
  for (int tid : threads) argv.insert(argv.end(), {"--trace-pid", std::to_string(tid)});
  facts_ = json{{"argv", argv}, {"threads", threads}, {"events", events}, {"clock", "mono"}};
  auto armed = host.run(Command{argv, kTraceTimeout});
  armed_ = true;
  if (!armed.ok()) {
    disarm();
    throw InfraError("arming the host-side trace of the vCPU threads failed: " + armed.describe());
  }
  if (tracefs_.empty()) tracefs_ = find_tracefs(host);
}

bool HostTrace::exchange(Executor& guest) {
  // Host clock read before and after the guest's: the guest's read lies in
  // between, so offset = midpoint - guest, within half the round trip.
  std::int64_t before = 0, guest_now = 0, after = 0;
  auto guest_probe = guest.find_program("vmlat-probe");
  if (!guest_probe || !read_clocks(host_, probe_, &before) || !read_clocks(guest, *guest_probe, &guest_now) ||
      !read_clocks(host_, probe_, &after))
    return false;
  Exchange e{before + (after - before) / 2 - guest_now, (after - before) / 2};
  facts_["clock_exchanges"].push_back(json{{"offset_ns", e.offset_ns}, {"uncertainty_ns", e.uncertainty_ns}});
  if (!best_ || e.uncertainty_ns < best_->uncertainty_ns) best_ = e;
  return true;
}

bool HostTrace::save_around(Executor& guest, std::int64_t guest_mono_ns, const std::string& name) {
  PhaseScope scope("cyclic-host-trace", Clock::now() + kTraceTimeout, /*interruptible=*/false);
  const std::string dir = tracefs_ + "/instances/" + kInstance;
  exchange(guest);
  if (!best_) {
    ctx_.log().warn("cyclic: cannot map the guest's clock to the host's");
    return false;
  }
  const std::int64_t offset = best_->offset_ns;
  const std::int64_t uncertainty = best_->uncertainty_ns;
  const std::int64_t host_ns = guest_mono_ns + offset;
  const double from = static_cast<double>(host_ns - kBeforeNs - uncertainty) / 1e9;
  const double to = static_cast<double>(host_ns + kAfterNs + uncertainty) / 1e9;
  // The window is cut on the host: the vCPU threads keep being traced after
  // the guest's spike, so the end of the buffer (what tail would give) may no
  // longer hold it. awk prints the header, the events in [from, to] and, last,
  // how many events the buffer held; tail is the fallback without awk.
  char bounds[96];
  std::snprintf(bounds, sizeof bounds, "%.6f %.6f", from, to);
  const std::string from_text(bounds, std::strchr(bounds, ' ')), to_text(std::strchr(bounds, ' ') + 1);
  static const char* kCut =
      "/^#/ {print; next} {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+[.][0-9]+:$/) {n++; "
      "t = substr($i, 1, length($i) - 1) + 0; if (t >= from && t <= to) print; break}} "
      "END {print \"#vmlat-events-in-buffer \" n + 0}";
  std::optional<std::uint64_t> in_buffer;
  auto read = host_.run(Command{{"awk", "-v", "from=" + from_text, "-v", "to=" + to_text, kCut, dir + "/trace"}, kTraceTimeout});
  if (read.ok()) {
    const auto last = read.out.rfind("#vmlat-events-in-buffer ");
    if (last != std::string::npos) {
      in_buffer = std::strtoull(read.out.c_str() + last + 24, nullptr, 10);
      read.out.resize(last);
    }
  }
  if (!read.ok() || !in_buffer)
    read = host_.run(Command{{"tail", "-c", std::to_string(kTraceReadBytes), dir + "/trace"}, kTraceTimeout});
  if (!read.ok()) {
    ctx_.log().warn("cyclic: cannot read the host-side trace: " + read.describe());
    return false;
  }
  std::size_t kept = 0, total = 0;
  std::string window = trace_window(read.out, from, to, &kept);
  trace_window(read.out, 0, 1e18, &total);
  if (in_buffer) total = *in_buffer;
  facts_["events_in_buffer"] = total;
  char head[512];
  std::snprintf(head, sizeof head,
                "# vmlat: host-side events of the vCPU threads around the guest's spike\n"
                "# guest CLOCK_MONOTONIC %.6f = host CLOCK_MONOTONIC %.6f (+- %.6f s); window %.6f .. %.6f; %zu events%s\n",
                static_cast<double>(guest_mono_ns) / 1e9, static_cast<double>(host_ns) / 1e9,
                static_cast<double>(uncertainty) / 1e9, from, to, kept,
                kept == 0 ? " (none: the window had left the host's ring buffer, or the vCPUs were not scheduled)" : "");
  ctx_.save_artifact(name, std::string(head) + window);
  facts_["spike_host_monotonic_ns"] = host_ns;
  facts_["clock_offset_ns"] = offset;
  facts_["clock_uncertainty_ns"] = uncertainty;
  facts_["events_in_window"] = kept;
  return true;
}

void HostTrace::disarm() noexcept {
  if (!armed_) return;
  armed_ = false;
  try {
    PhaseScope scope("cyclic-host-trace-reset", Clock::now() + kTraceTimeout, /*interruptible=*/false);
    host_.run(Command{{probe_, "--trace-disarm", "local:", "--trace-instance", kInstance}, kTraceTimeout});
  } catch (...) {
    ctx_.log().warn("cyclic: removing the host-side ftrace instance failed");
  }
}

HostTrace::~HostTrace() { disarm(); }

}  // namespace vmlat::cyclic
