#include "vmlat/histogram.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <cmath>
#include <stdexcept>

namespace vmlat {

void Histogram::add(nanoseconds latency, std::uint64_t count) {
  if (count == 0) return;
  if (latency.count() < 0) latency = nanoseconds(0);
  buckets_[static_cast<std::uint64_t>(latency.count() / 1000)] += count;
  if (!has_extremes_) {
    min_ = max_ = latency;
    has_extremes_ = true;
  } else {
    min_ = std::min(min_, latency);
    max_ = std::max(max_, latency);
  }
  sum_ += latency * static_cast<long long>(count);
}

void Histogram::add_bucket(std::uint64_t bucket_us, std::uint64_t count) {
  if (count == 0) return;
  buckets_[bucket_us] += count;
  // Without exact values, the bucket edges are the best bounds we know.
  nanoseconds low(static_cast<long long>(bucket_us) * 1000);
  if (!has_extremes_) {
    min_ = max_ = low;
    has_extremes_ = true;
  } else {
    min_ = std::min(min_, low);
    max_ = std::max(max_, low);
  }
  sum_ += low * static_cast<long long>(count);
}

void Histogram::set_exact(nanoseconds min, nanoseconds max, nanoseconds sum) {
  min_ = min;
  max_ = max;
  sum_ = sum;
  has_extremes_ = true;
}

void Histogram::merge(const Histogram& other) {
  const bool fresh = samples() == 0 && !missed_counted_;
  if (fresh) missed_counted_ = other.missed_counted_;
  else if (other.samples() != 0 || other.missed_counted_) missed_counted_ = missed_counted_ && other.missed_counted_;
  for (const auto& [bucket, count] : other.buckets_)
    if (count != 0) buckets_[bucket] += count;
  overflows_ += other.overflows_;
  missed_periods_ += other.missed_periods_;
  if (other.has_extremes_) {
    if (!has_extremes_) {
      min_ = other.min_;
      max_ = other.max_;
      has_extremes_ = true;
    } else {
      min_ = std::min(min_, other.min_);
      max_ = std::max(max_, other.max_);
    }
  }
  sum_ += other.sum_;
}

std::uint64_t Histogram::samples() const {
  std::uint64_t n = overflows_;
  for (const auto& [bucket, count] : buckets_) n += count;
  return n;
}

nanoseconds Histogram::mean() const {
  auto n = samples();
  if (n == 0) return nanoseconds(0);
  return nanoseconds(static_cast<long long>(std::llround(static_cast<double>(sum_.count()) / static_cast<double>(n))));
}

nanoseconds Histogram::percentile(double q) const {
  auto n = samples();
  if (n == 0) return nanoseconds(0);
  if (!(q > 0.0) || q > 1.0) throw std::invalid_argument("percentile must be in (0, 1]");
  // Nearest rank; the small epsilon keeps q*n = 99.0000000001 from becoming 100.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n) - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  std::uint64_t seen = 0;
  for (const auto& [bucket, count] : buckets_) {
    seen += count;
    if (seen >= rank) {
      nanoseconds value(static_cast<long long>(bucket) * 1000);
      return std::clamp(value, min_, std::max(min_, max_));
    }
  }
  return max_;  // the rank falls among the overflows
}

Stats Histogram::stats() const {
  Stats s;
  s.samples = samples();
  s.overflows = overflows_;
  s.missed_periods = missed_periods();
  if (s.samples == 0) return s;
  s.min = min_;
  s.max = max_;
  s.mean = mean();
  s.p50 = percentile(0.50);
  s.p90 = percentile(0.90);
  s.p99 = percentile(0.99);
  s.p999 = percentile(0.999);
  s.p9999 = percentile(0.9999);
  return s;
}

void Histogram::reserve_buckets(std::uint64_t n) {
  auto hint = buckets_.begin();
  for (std::uint64_t b = 0; b < n; ++b) hint = std::next(buckets_.try_emplace(hint, b, 0));
}

namespace {
template <typename T>
void append_number(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}
}  // namespace

void Histogram::append_json(std::string& out) const {
  // to_json().dump(): keys in insertion order (vmlat's json keeps it), no spaces.
  out += "{\"bucket_width_ns\":1000,\"buckets\":[";
  bool first = true;
  for (const auto& [bucket, count] : buckets_) {
    if (count == 0) continue;
    out += first ? "[" : ",[";
    first = false;
    append_number(out, bucket);
    out += ',';
    append_number(out, count);
    out += ']';
  }
  out += "],\"overflows\":";
  append_number(out, overflows_);
  out += ",\"missed_periods\":";
  if (missed_counted_) append_number(out, missed_periods_);
  else out += "null";
  out += ",\"min_ns\":";
  append_number(out, min_.count());
  out += ",\"max_ns\":";
  append_number(out, max_.count());
  out += ",\"sum_ns\":";
  append_number(out, sum_.count());
  out += '}';
}

json Histogram::to_json() const {
  json buckets = json::array();
  for (const auto& [bucket, count] : buckets_)
    if (count != 0) buckets.push_back({bucket, count});
  return json{{"bucket_width_ns", 1000},       {"buckets", std::move(buckets)},
              {"overflows", overflows_},       {"missed_periods", missed_counted_ ? json(missed_periods_) : json(nullptr)},
              {"min_ns", min_.count()},        {"max_ns", max_.count()},
              {"sum_ns", sum_.count()}};
}

Histogram Histogram::from_json(const json& j) {
  try {
    Histogram h;
    if (j.at("bucket_width_ns").get<long long>() != 1000)
      throw std::invalid_argument("unsupported bucket_width_ns");
    for (const auto& pair : j.at("buckets")) {
      if (!pair.is_array() || pair.size() != 2) throw std::invalid_argument("bucket is not [bucket, count]");
      h.buckets_[pair[0].get<std::uint64_t>()] += pair[1].get<std::uint64_t>();
    }
    h.overflows_ = j.at("overflows").get<std::uint64_t>();
    if (const json& missed = j.at("missed_periods"); !missed.is_null()) h.add_missed_periods(missed.get<std::uint64_t>());
    h.set_exact(nanoseconds(j.at("min_ns").get<long long>()), nanoseconds(j.at("max_ns").get<long long>()),
                nanoseconds(j.at("sum_ns").get<long long>()));
    h.has_extremes_ = h.samples() > 0;
    return h;
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("histogram: ") + e.what());
  }
}

json stats_to_json(const Stats& s) {
  return json{{"samples", s.samples},        {"min_ns", s.min.count()},   {"mean_ns", s.mean.count()},
              {"p50_ns", s.p50.count()},      {"p90_ns", s.p90.count()},   {"p99_ns", s.p99.count()},
              {"p99_9_ns", s.p999.count()},   {"p99_99_ns", s.p9999.count()},
              {"max_ns", s.max.count()},      {"overflows", s.overflows},
              {"missed_periods", s.missed_periods ? json(*s.missed_periods) : json(nullptr)}};
}

}  // namespace vmlat
