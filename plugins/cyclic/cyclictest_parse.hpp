// Reading what cyclictest (rt-tests 2.x) writes with --json, and the small
// CPU-list helpers the cyclic probe shares between its engines.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <vmlat/histogram.hpp>

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

}  // namespace vmlat::cyclic
