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
// vmlat-probe --window-ms: one frame per window.
inline constexpr std::string_view kNativeWindowFrameKind = "native-probe-window";
inline constexpr std::string_view kNativeWindowSchema = "vmlat-native-probe-window/1";

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

// One window of vmlat-probe --window-ms: the fields above for the window,
// and where it lies in time.
struct NativeWindow {
  NativeResult result;
  std::uint64_t index = 0;
  std::int64_t window_ns = 0;  // the --window-ms asked for
  std::int64_t start_mono_ns = 0, end_mono_ns = 0, start_unix_ns = 0, end_unix_ns = 0;
  bool final = false;
  // Per CPU: [start_mono_ns, end_mono_ns) of its activations (the threads of
  // a final window may stop at different activations).
  std::map<int, std::pair<std::int64_t, std::int64_t>> span_mono_ns;
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

// Checks and converts one window payload: everything parse_native_payload
// checks, and the window's span: start < end (a final window may be empty),
// each thread's span inside the window's, and its samples + missed periods
// equal to the activations its span holds (no activation unaccounted for).
NativeWindow parse_native_window(std::string_view payload, std::uint64_t histogram_range_us);

}  // namespace vmlat::cyclic
