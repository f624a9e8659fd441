#include "tracing.hpp"

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
