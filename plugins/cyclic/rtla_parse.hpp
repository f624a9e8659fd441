// Reading what `rtla timerlat hist` (rtla 6.x, time unit us, bucket size 1)
// prints: per CPU an IRQ and a thread latency histogram.
#pragma once

#include <cstdint>
#include <map>
#include <string_view>

#include <vmlat/histogram.hpp>

namespace vmlat::cyclic {

struct TimerlatHistograms {
  std::map<int, Histogram> irq;     // timer IRQ handler latency, per CPU
  std::map<int, Histogram> thread;  // timerlat thread latency, per CPU
};

// Parses the whole standard output of `rtla timerlat hist -E RANGE_US ...`
// (without -n, -b, --no-header, --no-summary, --no-index, --no-irq,
// --no-thread): the "Index IRQ-000 Thr-000 ..." header, one row per
// non-empty 1us bucket, and the over/count/min/avg/max summary rows.
// Checked before anything is returned: every CPU has both columns, counts are
// sum(buckets) + over, the lowest and highest buckets match min and max,
// overflows exactly when max >= RANGE_US, buckets inside the range. rtla
// prints avg as a whole number of us, so the sum is avg * count, clamped
// into [min, max] * count. Throws InfraError naming the problem.
TimerlatHistograms parse_rtla_hist(std::string_view text, std::uint64_t histogram_range_us);

}  // namespace vmlat::cyclic
