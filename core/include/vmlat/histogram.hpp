// Latency histogram with 1us buckets (as cyclictest), exact extremes and sum.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "vmlat/json.hpp"

namespace vmlat {

using std::chrono::nanoseconds;

// Summary statistics of one histogram. Percentiles have 1us resolution (the
// lower edge of the bucket holding the nearest-rank sample) clamped to the
// exact [min, max]; a rank that falls among the overflows reports max.
struct Stats {
  std::uint64_t samples = 0;
  nanoseconds min{0}, mean{0}, p50{0}, p90{0}, p99{0}, p999{0}, p9999{0}, max{0};
  std::uint64_t overflows = 0;
  // Activations skipped after late wake-ups, as the probe counted them;
  // nullopt when the probe does not count them (cyclictest, timerlat):
  // unknown is never reported as 0.
  std::optional<std::uint64_t> missed_periods;
};

class Histogram {
 public:
  // One sample of known latency.
  void add(nanoseconds latency, std::uint64_t count = 1);
  // Samples known only by bucket (floor(latency/1us)), e.g. from cyclictest.
  // Extremes and sum must then be set with set_exact().
  void add_bucket(std::uint64_t bucket_us, std::uint64_t count);
  // Samples above the probe's histogram range: counted, value unknown.
  void add_overflows(std::uint64_t count) { overflows_ += count; }
  // Missed periods the probe counted (0 included): makes them known. A
  // histogram nobody called this on has them unknown.
  void add_missed_periods(std::uint64_t count) {
    missed_periods_ += count;
    missed_counted_ = true;
  }
  // Overrides the extremes and the sum with the probe's exact values.
  void set_exact(nanoseconds min, nanoseconds max, nanoseconds sum);

  // Merges counts, extremes and sums; empty buckets of `other` are skipped.
  // Missed periods stay known only if both sides counted them (a histogram
  // with no samples and none counted takes the other's state).
  void merge(const Histogram& other);
  // Inserts empty buckets 0..n-1, so that adding samples below n us never
  // allocates again (the monitor's cumulative histograms: their memory is
  // taken once, at the start of a session). Empty buckets are invisible:
  // not counted, not merged, not in to_json().
  void reserve_buckets(std::uint64_t n);

  std::uint64_t samples() const;  // bucketed samples + overflows
  std::uint64_t overflows() const { return overflows_; }
  std::optional<std::uint64_t> missed_periods() const {
    return missed_counted_ ? std::optional<std::uint64_t>(missed_periods_) : std::nullopt;
  }
  nanoseconds min() const { return min_; }
  nanoseconds max() const { return max_; }
  nanoseconds sum() const { return sum_; }
  nanoseconds mean() const;
  // q in (0, 1]. Nearest rank: the smallest value v with #(samples <= v) >= ceil(q*N).
  nanoseconds percentile(double q) const;
  Stats stats() const;
  bool empty() const { return samples() == 0; }

  const std::map<std::uint64_t, std::uint64_t>& buckets() const { return buckets_; }

  // {"bucket_width_ns": 1000, "buckets": [[bucket, count], ...], "overflows": n,
  //  "missed_periods": n or null (not counted), "min_ns": .., "max_ns": .., "sum_ns": ..}
  json to_json() const;
  static Histogram from_json(const json& j);  // throws std::invalid_argument
  // Appends exactly to_json().dump() to `out`, without building a JSON tree
  // (nothing is allocated but `out`'s own growth).
  void append_json(std::string& out) const;

 private:
  std::map<std::uint64_t, std::uint64_t> buckets_;
  std::uint64_t overflows_ = 0;
  std::uint64_t missed_periods_ = 0;
  bool missed_counted_ = false;
  nanoseconds min_{0}, max_{0}, sum_{0};
  bool has_extremes_ = false;
};

json stats_to_json(const Stats& s);

}  // namespace vmlat
