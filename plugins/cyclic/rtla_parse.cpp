#include "rtla_parse.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <vmlat/errors.hpp>

namespace vmlat::cyclic {

namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

[[noreturn]] void fail(const std::string& what) { throw InfraError("rtla timerlat hist output: " + what); }

bool parse_number(std::string_view text, std::uint64_t& value) {
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct Column {
  bool irq = false;
  int cpu = 0;
  std::map<std::uint64_t, std::uint64_t> buckets;
  std::uint64_t over = 0, count = 0, min = 0, avg = 0, max = 0;
  unsigned seen = 0;  // summary rows read, one bit each
};

Histogram to_histogram(const Column& c, std::uint64_t range_us) {
  const std::string where = std::string(c.irq ? "IRQ" : "thread") + " latency of CPU " + std::to_string(c.cpu);
  if (c.seen != 0x1f) fail(where + ": the summary (over, count, min, avg, max) is incomplete");
  std::uint64_t bucketed = 0;
  for (const auto& [bucket, n] : c.buckets) bucketed += n;
  if (bucketed + c.over != c.count)
    fail(where + ": count " + std::to_string(c.count) + " != histogram " + std::to_string(bucketed) + " + over " +
         std::to_string(c.over));
  Histogram h;
  if (c.count == 0) return h;
  if (c.min > c.max) fail(where + ": min " + std::to_string(c.min) + "us is above max " + std::to_string(c.max) + "us");
  if (c.buckets.empty() ? c.min < range_us : c.buckets.begin()->first != c.min)
    fail(where + ": the lowest bucket does not match min " + std::to_string(c.min) + "us");
  if (c.over == 0 && (c.buckets.empty() || c.buckets.rbegin()->first != c.max))
    fail(where + ": the highest bucket does not match max " + std::to_string(c.max) + "us although nothing overflowed");
  if (c.over > 0 && c.max < range_us)
    fail(where + ": " + std::to_string(c.over) + " overflows although max " + std::to_string(c.max) +
         "us is inside the " + std::to_string(range_us) + "us range");
  for (const auto& [bucket, n] : c.buckets) h.add_bucket(bucket, n);
  h.add_overflows(c.over);
  const auto count = static_cast<long double>(c.count);
  const long double sum_ns = std::clamp(static_cast<long double>(c.avg) * 1000.0L * count,
                                        static_cast<long double>(c.min) * 1000.0L * count,
                                        static_cast<long double>(c.max) * 1000.0L * count);
  if (sum_ns > static_cast<long double>(std::numeric_limits<long long>::max()))
    fail(where + ": the sum of latencies does not fit in 64 bits");
  h.set_exact(microseconds(c.min), microseconds(c.max), nanoseconds(static_cast<long long>(sum_ns)));
  return h;
}

}  // namespace

TimerlatHistograms parse_rtla_hist(std::string_view text, std::uint64_t range_us) {
  if (range_us == 0) throw std::invalid_argument("parse_rtla_hist: histogram range is 0");
  std::vector<Column> columns;
  bool unit_us = false;
  std::istringstream in{std::string(text)};
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const std::string at = "line " + std::to_string(line_no);
    if (line.rfind("#", 0) == 0) {
      if (line.find("Time unit is microseconds") != std::string::npos) unit_us = true;
      if (line.find("Time unit is nanoseconds") != std::string::npos) fail(at + ": run without -n (nanoseconds)");
      continue;
    }
    auto w = words(line);
    if (w.empty()) continue;
    if (w[0] == "Index") {
      if (!columns.empty()) fail(at + ": a second header");
      for (std::size_t i = 1; i < w.size(); ++i) {
        Column c;
        std::uint64_t cpu = 0;
        if (w[i].size() < 5 || (w[i].rfind("IRQ-", 0) != 0 && w[i].rfind("Thr-", 0) != 0) ||
            !parse_number(std::string_view(w[i]).substr(4), cpu) || cpu > 1u << 20)
          fail(at + ": unexpected column '" + w[i] + "' (expected IRQ-NNN and Thr-NNN)");
        c.irq = w[i][0] == 'I';
        c.cpu = static_cast<int>(cpu);
        for (const auto& other : columns)
          if (other.irq == c.irq && other.cpu == c.cpu) fail(at + ": column '" + w[i] + "' twice");
        columns.push_back(c);
      }
      continue;
    }
    if (columns.empty()) fail(at + ": data before the 'Index' header: '" + line + "'");
    if (w.size() != columns.size() + 1)
      fail(at + ": " + std::to_string(w.size() - 1) + " values for " + std::to_string(columns.size()) + " columns");
    static const char* const kSummary[] = {"over:", "count:", "min:", "avg:", "max:"};
    int summary = -1;
    for (int k = 0; k < 5; ++k)
      if (w[0] == kSummary[k]) summary = k;
    std::uint64_t bucket = 0;
    if (summary < 0) {
      if (!parse_number(w[0], bucket)) fail(at + ": unexpected row '" + w[0] + "'");
      if (bucket >= range_us)
        fail(at + ": bucket " + w[0] + "us is outside the " + std::to_string(range_us) + "us range (-E)");
    }
    for (std::size_t i = 0; i < columns.size(); ++i) {
      Column& c = columns[i];
      std::uint64_t v = 0;
      // rtla prints a CPU without samples as "-" in min/avg/max.
      if (w[i + 1] == "-" && summary >= 2) {
        c.seen |= 1u << summary;
        continue;
      }
      if (!parse_number(w[i + 1], v)) fail(at + ": '" + w[i + 1] + "' is not a whole number");
      if (summary < 0) {
        if (v > 0 && !c.buckets.emplace(bucket, v).second) fail(at + ": bucket " + w[0] + " twice");
        continue;
      }
      if (c.seen & (1u << summary)) fail(at + ": '" + w[0] + "' twice");
      c.seen |= 1u << summary;
      (summary == 0 ? c.over : summary == 1 ? c.count : summary == 2 ? c.min : summary == 3 ? c.avg : c.max) = v;
    }
  }
  if (columns.empty()) fail("no 'Index IRQ-NNN Thr-NNN' header (did rtla fail, or was it run with --no-header?)");
  if (!unit_us) fail("no '# Time unit is microseconds (us)' line");
  TimerlatHistograms out;
  for (const auto& c : columns) (c.irq ? out.irq : out.thread).emplace(c.cpu, to_histogram(c, range_us));
  for (const auto& [cpu, h] : out.irq)
    if (!out.thread.count(cpu)) fail("CPU " + std::to_string(cpu) + " has an IRQ column but no thread column");
  for (const auto& [cpu, h] : out.thread)
    if (!out.irq.count(cpu)) fail("CPU " + std::to_string(cpu) + " has a thread column but no IRQ column");
  return out;
}

}  // namespace vmlat::cyclic
