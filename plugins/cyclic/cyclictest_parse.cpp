#include "cyclictest_parse.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <stdexcept>

#include <vmlat/errors.hpp>
#include <vmlat/json.hpp>

#include "strict_json.hpp"

namespace vmlat::cyclic {

namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

constexpr std::string_view kDocument = "cyclictest JSON";

[[noreturn]] void fail(const std::string& what) { strict::fail(kDocument, what); }
const json& field(const json& object, const char* key, const std::string& where) {
  return strict::field(kDocument, object, key, where);
}
std::uint64_t unsigned_field(const json& object, const char* key, const std::string& where) {
  return strict::unsigned_field(kDocument, object, key, where);
}

// A whole decimal number, nothing else (no sign, no spaces, no fraction).
bool parse_decimal(std::string_view text, std::uint64_t& value) {
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

std::pair<int, Histogram> parse_thread(const std::string& key, const json& thread,
                                       std::uint64_t range_us) {
  std::string where = "thread " + key;
  if (!thread.is_object()) fail(where + " is not an object");

  const int cpu = strict::cpu_field(kDocument, thread, where);
  where += " (CPU " + std::to_string(cpu) + ")";

  const std::uint64_t cycles = unsigned_field(thread, "cycles", where);
  const std::uint64_t min_us = unsigned_field(thread, "min", where);
  const std::uint64_t max_us = unsigned_field(thread, "max", where);
  const json& avg_value = field(thread, "avg", where);
  if (!avg_value.is_number()) fail(where + ": \"avg\" is " + avg_value.dump() + ", not a number");
  const double avg_us = avg_value.get<double>();
  const json& histogram = field(thread, "histogram", where);
  if (!histogram.is_object()) fail(where + ": \"histogram\" is not an object");

  if (cycles == 0) fail(where + ": recorded no cycles");
  if (min_us > max_us)
    fail(where + ": min " + std::to_string(min_us) + "us is above max " + std::to_string(max_us) + "us");
  // cyclictest prints avg with two decimals.
  if (!std::isfinite(avg_us) || avg_us < static_cast<double>(min_us) - 0.01 ||
      avg_us > static_cast<double>(max_us) + 0.01)
    fail(where + ": avg " + avg_value.dump() + "us is outside [min " + std::to_string(min_us) +
         "us, max " + std::to_string(max_us) + "us]");

  std::map<std::uint64_t, std::uint64_t> buckets;
  std::uint64_t bucketed = 0;
  for (const auto& [bucket_text, count_value] : histogram.items()) {
    std::uint64_t bucket = 0;
    if (!parse_decimal(bucket_text, bucket))
      fail(where + ": histogram bucket \"" + bucket_text + "\" is not a whole number of microseconds");
    if (bucket >= range_us)
      fail(where + ": histogram bucket " + bucket_text + "us is outside the " +
           std::to_string(range_us) + "us range the run was started with");
    if (!count_value.is_number_unsigned())
      fail(where + ": histogram bucket " + bucket_text + " has count " + count_value.dump() +
           ", not a non-negative integer");
    const std::uint64_t count = count_value.get<std::uint64_t>();
    if (!buckets.emplace(bucket, count).second)
      fail(where + ": histogram bucket " + std::to_string(bucket) + "us is listed twice");
    if (count > cycles - bucketed)
      fail(where + ": histogram holds more samples than the " + std::to_string(cycles) + " cycles");
    bucketed += count;
  }
  std::erase_if(buckets, [](const auto& entry) { return entry.second == 0; });
  const std::uint64_t overflows = cycles - bucketed;

  // The histogram and the extremes come from the same per-cycle value, so
  // they must agree exactly.
  if (buckets.empty()) {
    if (min_us < range_us)
      fail(where + ": histogram is empty although min " + std::to_string(min_us) +
           "us is inside the " + std::to_string(range_us) +
           "us range (was cyclictest run without -h, or with another -h?)");
  } else if (buckets.begin()->first != min_us) {
    fail(where + ": lowest histogram bucket " + std::to_string(buckets.begin()->first) +
         "us does not match min " + std::to_string(min_us) + "us");
  }
  if (overflows == 0) {
    if (buckets.empty() || buckets.rbegin()->first != max_us)
      fail(where + ": highest histogram bucket " + std::to_string(buckets.rbegin()->first) +
           "us does not match max " + std::to_string(max_us) + "us although nothing overflowed");
  } else if (max_us < range_us) {
    fail(where + ": " + std::to_string(overflows) + " of " + std::to_string(cycles) +
         " cycles are missing from the histogram although max " + std::to_string(max_us) +
         "us is inside the " + std::to_string(range_us) + "us range");
  }

  Histogram h;
  for (const auto& [bucket, count] : buckets) h.add_bucket(bucket, count);
  h.add_overflows(overflows);
  const nanoseconds min = microseconds(min_us);
  const nanoseconds max = microseconds(max_us);
  // avg has two decimals: keep the sum consistent with the exact extremes.
  const long double sum_ns = std::round(static_cast<long double>(avg_us) * 1000.0L *
                                        static_cast<long double>(cycles));
  const long double low = static_cast<long double>(min.count()) * cycles;
  const long double high = static_cast<long double>(max.count()) * cycles;
  const long double clamped = std::clamp(sum_ns, low, high);
  if (clamped > static_cast<long double>(std::numeric_limits<long long>::max()))
    fail(where + ": sum of latencies does not fit in 64 bits");
  h.set_exact(min, max, nanoseconds(static_cast<long long>(clamped)));
  return {cpu, std::move(h)};
}

}  // namespace

std::map<int, Histogram> parse_cyclictest_json(std::string_view text, std::uint64_t histogram_range_us) {
  if (histogram_range_us == 0) throw std::invalid_argument("parse_cyclictest_json: histogram range is 0");
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    fail(std::string("malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) fail("the document is not a JSON object");
  const json& threads = field(doc, "thread", "document");
  if (!threads.is_object()) fail("\"thread\" is not an object");
  if (threads.empty()) fail("no threads were recorded");
  const std::uint64_t num_threads = unsigned_field(doc, "num_threads", "document");
  if (num_threads != threads.size())
    fail("num_threads is " + std::to_string(num_threads) + " but " + std::to_string(threads.size()) +
         " threads are listed");

  std::map<int, Histogram> per_cpu;
  for (const auto& [key, thread] : threads.items()) {
    auto [cpu, histogram] = parse_thread(key, thread, histogram_range_us);
    if (!per_cpu.emplace(cpu, std::move(histogram)).second)
      fail("two threads measured CPU " + std::to_string(cpu));
  }
  return per_cpu;
}

std::map<int, int> cyclictest_thread_cpus(std::string_view text) {
  std::map<int, int> out;
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("thread") || !doc["thread"].is_object()) return out;
  for (const auto& [key, thread] : doc["thread"].items()) {
    std::uint64_t n = 0;
    if (!parse_decimal(key, n) || n > 1u << 20 || !thread.is_object()) continue;
    if (auto it = thread.find("cpu"); it != thread.end() && it->is_number_unsigned())
      out[static_cast<int>(n)] = static_cast<int>(it->get<std::uint64_t>());
  }
  return out;
}

CyclictestStdout parse_cyclictest_stdout(std::string_view text, const std::map<int, int>& thread_cpus) {
  CyclictestStdout out;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    std::string line(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    long long thread = 0, latency = 0, ts = 0, n = 0;
    char tail = 0;
    if (line.rfind("T:", 0) == 0 && line.find("Spike:") != std::string::npos) {
      if (std::sscanf(line.c_str(), "T:%lld Spike:%lld: TS:%lld %c", &thread, &latency, &ts, &tail) != 3 ||
          thread < 0 || latency < 0 || ts < 0)
        throw InfraError("cyclictest output line " + std::to_string(line_no) + ": malformed spike line '" + line + "'");
      auto it = thread_cpus.find(static_cast<int>(thread));
      if (it == thread_cpus.end())
        throw InfraError("cyclictest output line " + std::to_string(line_no) + ": spike of thread " +
                         std::to_string(thread) + ", which the JSON does not list");
      Spike s;
      s.cpu = it->second;
      s.latency = microseconds(latency);
      s.monotonic_ns = ts * 1000;
      out.spikes.push_back(s);
    } else if (std::sscanf(line.c_str(), "spikes = %lld %c", &n, &tail) == 1 && n >= 0) {
      out.spikes_total = static_cast<std::uint64_t>(n);
      out.spikes_reported = true;
    } else if (std::sscanf(line.c_str(), "# Break value: %lld %c", &n, &tail) == 1) {
      out.break_value_us = n;
    }
  }
  return out;
}

}  // namespace vmlat::cyclic
