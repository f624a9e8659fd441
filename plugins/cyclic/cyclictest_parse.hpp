// Reading what cyclictest (rt-tests 2.x) writes with --json, and the small
// CPU-list helpers the cyclic probe shares between its engines.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <vmlat/histogram.hpp>
#include <vmlat/plugin.hpp>

namespace vmlat::cyclic {

// Parses the document `cyclictest -h RANGE --json=FILE` writes into one
// histogram per measured CPU (key: the thread's "cpu").
//
// `histogram_range_us` is the -h value of the run: buckets 0..RANGE-1 are
// counted, longer latencies only in "cycles" (overflows = cycles - sum of the
// histogram). The extremes come from "min"/"max" (whole microseconds, as
// cyclictest measures them) and the sum from "avg" * "cycles".
//
// Everything is checked before anything is returned: malformed JSON, a missing
// or mistyped field, a thread without cycles, two threads on one CPU, a
// histogram that disagrees with min/max/cycles (e.g. a run without -h). Any
// problem throws InfraError saying what is wrong; there is no partial result.
std::map<int, Histogram> parse_cyclictest_json(std::string_view text, std::uint64_t histogram_range_us);

// Thread number -> CPU, from the same JSON document ("thread": {"0": {"cpu": ..}}).
std::map<int, int> cyclictest_thread_cpus(std::string_view json_text);

// What cyclictest --spike=US prints on standard output at the end of a run:
// one "T:%2d Spike:%8ld: TS: %12ld" line per recorded spike (thread number,
// latency in us, CLOCK_MONOTONIC wake-up time in us) and "spikes = N" (all
// spikes over the trigger, also those beyond --spike-nodes); and, after -b,
// "# Break thread: TID" / "# Break value: US".
struct CyclictestStdout {
  std::vector<Spike> spikes;   // cpu from thread_cpus; realtime_ns unknown (-1)
  std::uint64_t spikes_total = 0;
  bool spikes_reported = false;  // a "spikes = N" line was there
  long long break_value_us = -1;  // -b fired: the latency that stopped the run
};
// Throws InfraError for a spike line that does not parse or names a thread
// the JSON does not have.
CyclictestStdout parse_cyclictest_stdout(std::string_view text, const std::map<int, int>& thread_cpus);

}  // namespace vmlat::cyclic
