#include "cell/plausibility.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "vmlat/interrupt.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

std::string implausible(const CellSpec& cell, const std::map<int, Histogram>& per_cpu,
                        std::optional<std::chrono::steady_clock::duration> measured_for) {
  using std::chrono::duration;
  namespace pl = plausibility;
  if (cell.period <= std::chrono::nanoseconds(0) || cell.duration <= std::chrono::nanoseconds(0)) return {};
  char buf[480];
  const double seconds = duration<double>(cell.duration).count();
  if (measured_for) {
    const double took = duration<double>(*measured_for).count();
    if (took < seconds * pl::min_time_fraction - pl::time_slack_s) {
      std::snprintf(buf, sizeof buf,
                    "the probe returned after %.2f s of a %.2f s measurement: it stopped early (killed or signalled "
                    "from outside?); its data is kept but is not a measurement",
                    took, seconds);
      return buf;
    }
  }
  const double expected = static_cast<double>(cell.duration.count()) / static_cast<double>(cell.period.count());
  const auto period_ns = static_cast<std::uint64_t>(cell.period.count());
  for (const auto& [cpu, h] : per_cpu) {
    const auto samples = static_cast<unsigned long long>(h.samples());
    // Unknown (a probe that does not count them): none counted here; the
    // skipped activations are bounded from the buckets below.
    const auto missed = static_cast<unsigned long long>(h.missed_periods().value_or(0));
    const double counted = static_cast<double>(samples + missed);
    const double most = expected * pl::max_fraction + pl::count_slack;
    if (counted > most) {
      std::snprintf(buf, sizeof buf,
                    "implausible result on CPU %d: %llu samples + %llu missed periods, but %s at a period of %s allow "
                    "at most %.0f: this is not a measurement of the cell",
                    cpu, samples, missed, format_duration(cell.duration).c_str(), format_duration(cell.period).c_str(),
                    most);
      return buf;
    }
    // Activations skipped after late wake-ups: counted by probes that count
    // them (missed_periods); for those that do not (cyclictest skips them
    // silently) at most floor(latency / period) per sample, from the buckets.
    unsigned long long skipped = 0;
    for (const auto& [bucket_us, count] : h.buckets()) skipped += count * (((bucket_us + 1) * 1000 - 1) / period_ns);
    skipped += h.overflows() * (static_cast<std::uint64_t>(h.max().count()) / period_ns);
    skipped = std::max(skipped, missed);
    const double least = expected * pl::min_fraction;
    if (static_cast<double>(samples + skipped) < least) {
      std::snprintf(buf, sizeof buf,
                    "implausible result on CPU %d: %llu samples and at most %llu skipped or missed periods, where %s at "
                    "a period of %s make %.0f activations: the probe measured less than %.0f%% of the time",
                    cpu, samples, skipped, format_duration(cell.duration).c_str(), format_duration(cell.period).c_str(),
                    expected, pl::min_fraction * 100);
      return buf;
    }
  }
  return {};
}

std::string sort_and_check_spikes(std::vector<Spike>& spikes, const std::map<int, Histogram>& per_cpu) {
  // Worst first; equal latencies in time order.
  std::stable_sort(spikes.begin(), spikes.end(), [](const Spike& a, const Spike& b) {
    if (a.latency != b.latency) return a.latency > b.latency;
    return a.monotonic_ns < b.monotonic_ns;
  });
  std::set<int> seen;
  for (const auto& sp : spikes) {
    if (!seen.insert(sp.cpu).second) continue;  // the CPU's worst is its first entry
    auto it = per_cpu.find(sp.cpu);
    if (it == per_cpu.end())
      return "the probe listed a spike on CPU " + std::to_string(sp.cpu) + ", which it did not measure";
    if (sp.latency != it->second.max())
      return "the worst spike on CPU " + std::to_string(sp.cpu) + " (" + std::to_string(sp.latency.count()) +
             " ns) is not the histogram's maximum (" + std::to_string(it->second.max().count()) +
             " ns): the spike list does not belong to this measurement";
  }
  return {};
}

}  // namespace vmlat
