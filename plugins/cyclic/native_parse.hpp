// Reading the result of vmlat-probe (plugins/cyclic/native): one vmlat frame
// of kind "native-probe-result" whose payload is a JSON document of schema
// "vmlat-native-probe/1".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <vector>

#include <vmlat/histogram.hpp>
#include <vmlat/json.hpp>
#include <vmlat/plugin.hpp>

namespace vmlat::cyclic {

inline constexpr std::string_view kNativeFrameKind = "native-probe-result";
inline constexpr std::string_view kNativeSchema = "vmlat-native-probe/1";

struct NativeResult {
  std::int64_t period_ns = 0;
  int priority = 0;
  std::string policy;            // "fifo" or "other"
  bool interrupted = false;      // the probe stopped early (SIGINT/SIGTERM)
  std::string probe_version;     // empty if the payload does not say
  std::map<int, Histogram> per_cpu;  // a thread without samples has an empty histogram
  std::vector<Spike> spikes;         // each thread's worst wake-ups, worst first per thread
  json trace;                        // the payload's "trace" object (--trace-above-ns), or null
};

// Checks and converts one payload. `histogram_range_us` is the --histogram-us
// value the probe was started with. Throws InfraError naming the problem
// (malformed JSON, wrong schema, missing or mistyped field, samples that are
// not sum(histogram) + overflows, min > max, buckets outside [min, max] or
// the range, a sum outside [min, max] * samples, two threads on one CPU;
// spikes that are not sorted worst first, more than spikes_per_thread, or
// whose worst is not max_ns).
NativeResult parse_native_payload(std::string_view payload, std::uint64_t histogram_range_us);

// Decodes the probe's whole standard output: exactly one verified frame of
// kind "native-probe-result" (text around it is ignored, but any frame error
// such as a checksum mismatch or truncation is not), then its payload as
// above. Throws InfraError.
NativeResult parse_native_output(std::string_view output, std::uint64_t histogram_range_us);

}  // namespace vmlat::cyclic
