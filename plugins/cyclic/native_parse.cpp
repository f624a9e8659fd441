#include "native_parse.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <stdexcept>

#include <vmlat/errors.hpp>
#include <vmlat/frame.hpp>

#include "strict_json.hpp"

namespace vmlat::cyclic {

namespace {

using std::chrono::nanoseconds;

constexpr std::string_view kDocument = "vmlat-probe result";

[[noreturn]] void fail(const std::string& what) { strict::fail(kDocument, what); }
const json& field(const json& object, const char* key, const std::string& where) {
  return strict::field(kDocument, object, key, where);
}
std::uint64_t unsigned_field(const json& object, const char* key, const std::string& where) {
  return strict::unsigned_field(kDocument, object, key, where);
}

std::int64_t nanoseconds_field(const json& object, const char* key, const std::string& where) {
  const std::uint64_t value = unsigned_field(object, key, where);
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    fail(where + ": \"" + key + "\" " + std::to_string(value) + " does not fit in 64 bits");
  return static_cast<std::int64_t>(value);
}

// A thread's "spikes" ([[latency_ns, monotonic_ns, realtime_ns], ...],
// worst first; absent from older probes).
std::vector<Spike> parse_spikes(const json& thread, int cpu, const std::string& where, std::uint64_t samples,
                                std::int64_t max_ns, std::uint64_t capacity) {
  std::vector<Spike> spikes;
  auto it = thread.find("spikes");
  if (it == thread.end()) return spikes;
  if (!it->is_array()) fail(where + ": \"spikes\" is not an array");
  if (it->size() > capacity)
    fail(where + ": " + std::to_string(it->size()) + " spikes, more than the " + std::to_string(capacity) +
         " per thread asked for");
  if (it->size() > samples) fail(where + ": more spikes than samples");
  for (const json& entry : *it) {
    if (!entry.is_array() || entry.size() != 3 || !entry[0].is_number_unsigned() || !entry[1].is_number_unsigned() ||
        !entry[2].is_number_unsigned())
      fail(where + ": spike " + entry.dump() + " is not [latency_ns, monotonic_ns, realtime_ns]");
    Spike s;
    s.cpu = cpu;
    s.latency = nanoseconds(static_cast<std::int64_t>(entry[0].get<std::uint64_t>()));
    s.monotonic_ns = static_cast<std::int64_t>(entry[1].get<std::uint64_t>());
    s.realtime_ns = static_cast<std::int64_t>(entry[2].get<std::uint64_t>());
    if (!spikes.empty() && s.latency > spikes.back().latency)
      fail(where + ": spikes are not sorted worst first");
    spikes.push_back(s);
  }
  if (!spikes.empty() && spikes.front().latency.count() != max_ns)
    fail(where + ": the worst spike (" + std::to_string(spikes.front().latency.count()) + " ns) is not max_ns " +
         std::to_string(max_ns));
  return spikes;
}

std::pair<int, Histogram> parse_thread(std::size_t index, const json& thread, std::uint64_t range_us,
                                       std::uint64_t spike_capacity, std::vector<Spike>& spikes_out) {
  std::string where = "thread " + std::to_string(index);
  if (!thread.is_object()) fail(where + " is not an object");
  const int cpu = strict::cpu_field(kDocument, thread, where);
  where += " (CPU " + std::to_string(cpu) + ")";

  const std::uint64_t samples = unsigned_field(thread, "samples", where);
  const std::int64_t min_ns = nanoseconds_field(thread, "min_ns", where);
  const std::int64_t max_ns = nanoseconds_field(thread, "max_ns", where);
  const std::int64_t sum_ns = nanoseconds_field(thread, "sum_ns", where);
  const std::uint64_t overflows = unsigned_field(thread, "overflows", where);
  const std::uint64_t missed = unsigned_field(thread, "missed_periods", where);
  const json& histogram = field(thread, "histogram", where);
  if (!histogram.is_array()) fail(where + ": \"histogram\" is not an array");

  std::map<std::uint64_t, std::uint64_t> buckets;
  std::uint64_t bucketed = 0;
  for (const json& entry : histogram) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_number_unsigned() ||
        !entry[1].is_number_unsigned())
      fail(where + ": histogram entry " + entry.dump() + " is not [bucket_us, count]");
    const auto bucket = entry[0].get<std::uint64_t>();
    const auto count = entry[1].get<std::uint64_t>();
    if (bucket >= range_us)
      fail(where + ": histogram bucket " + std::to_string(bucket) + "us is outside the " +
           std::to_string(range_us) + "us range the probe was started with");
    if (!buckets.emplace(bucket, count).second)
      fail(where + ": histogram bucket " + std::to_string(bucket) + "us is listed twice");
    if (count > samples - bucketed)  // bucketed <= samples holds here
      fail(where + ": histogram holds more than the " + std::to_string(samples) + " samples");
    bucketed += count;
  }
  std::erase_if(buckets, [](const auto& entry) { return entry.second == 0; });
  if (samples - bucketed != overflows)
    fail(where + ": samples " + std::to_string(samples) + " != histogram " + std::to_string(bucketed) +
         " + overflows " + std::to_string(overflows));

  std::vector<Spike> spikes = parse_spikes(thread, cpu, where, samples, max_ns, spike_capacity);
  spikes_out.insert(spikes_out.end(), spikes.begin(), spikes.end());

  Histogram h;
  h.add_missed_periods(missed);
  if (samples == 0) return {cpu, std::move(h)};

  if (min_ns > max_ns)
    fail(where + ": min_ns " + std::to_string(min_ns) + " is above max_ns " + std::to_string(max_ns));
  const auto min_bucket = static_cast<std::uint64_t>(min_ns / 1000);
  const auto max_bucket = static_cast<std::uint64_t>(max_ns / 1000);
  if (!buckets.empty() && (buckets.begin()->first < min_bucket || buckets.rbegin()->first > max_bucket))
    fail(where + ": histogram buckets " + std::to_string(buckets.begin()->first) + ".." +
         std::to_string(buckets.rbegin()->first) + "us lie outside [min_ns " + std::to_string(min_ns) +
         ", max_ns " + std::to_string(max_ns) + "]");
  if (overflows > 0 && max_bucket < range_us)
    fail(where + ": " + std::to_string(overflows) + " overflows although max_ns " + std::to_string(max_ns) +
         " is inside the " + std::to_string(range_us) + "us range");
  if (overflows == 0 && max_bucket >= range_us)
    fail(where + ": no overflows although max_ns " + std::to_string(max_ns) + " is beyond the " +
         std::to_string(range_us) + "us range");
  const long double n = static_cast<long double>(samples);
  if (static_cast<long double>(sum_ns) < static_cast<long double>(min_ns) * n ||
      static_cast<long double>(sum_ns) > static_cast<long double>(max_ns) * n)
    fail(where + ": sum_ns " + std::to_string(sum_ns) + " is not between min_ns and max_ns times " +
         std::to_string(samples) + " samples");

  for (const auto& [bucket, count] : buckets) h.add_bucket(bucket, count);
  h.add_overflows(overflows);
  h.set_exact(nanoseconds(min_ns), nanoseconds(max_ns), nanoseconds(sum_ns));
  return {cpu, std::move(h)};
}

}  // namespace

namespace {

json parse_document(std::string_view payload, std::string_view expected_schema) {
  json doc;
  try {
    doc = json::parse(payload.begin(), payload.end());
  } catch (const json::parse_error& e) {
    fail(std::string("malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) fail("the payload is not a JSON object");
  const json& schema = field(doc, "schema", "payload");
  if (!schema.is_string() || schema.get<std::string>() != expected_schema)
    fail("schema is " + schema.dump() + ", expected \"" + std::string(expected_schema) + "\"");
  return doc;
}

NativeResult parse_fields(const json& doc, std::uint64_t histogram_range_us);

}  // namespace

NativeResult parse_native_payload(std::string_view payload, std::uint64_t histogram_range_us) {
  if (histogram_range_us == 0) throw std::invalid_argument("parse_native_payload: histogram range is 0");
  return parse_fields(parse_document(payload, kNativeSchema), histogram_range_us);
}

NativeWindow parse_native_window(std::string_view payload, std::uint64_t histogram_range_us) {
  if (histogram_range_us == 0) throw std::invalid_argument("parse_native_window: histogram range is 0");
  const json doc = parse_document(payload, kNativeWindowSchema);
  NativeWindow w;
  w.result = parse_fields(doc, histogram_range_us);
  const json& win = field(doc, "window", "payload");
  if (!win.is_object()) fail("window is " + win.dump() + ", not an object");
  w.index = unsigned_field(win, "index", "window");
  w.window_ns = nanoseconds_field(win, "window_ns", "window");
  w.start_mono_ns = nanoseconds_field(win, "start_mono_ns", "window");
  w.end_mono_ns = nanoseconds_field(win, "end_mono_ns", "window");
  w.start_unix_ns = nanoseconds_field(win, "start_unix_ns", "window");
  w.end_unix_ns = nanoseconds_field(win, "end_unix_ns", "window");
  const json& final = field(win, "final", "window");
  if (!final.is_boolean()) fail("window: final is " + final.dump() + ", not a boolean");
  w.final = final.get<bool>();
  const std::string where = "window " + std::to_string(w.index);
  if (w.end_mono_ns < w.start_mono_ns || (w.end_mono_ns == w.start_mono_ns && !w.final))
    fail(where + ": ends (" + std::to_string(w.end_mono_ns) + ") before it starts (" + std::to_string(w.start_mono_ns) +
         ")");
  if (w.window_ns == 0) fail(where + ": window_ns is 0");
  const std::int64_t period = w.result.period_ns;
  for (const json& thread : doc["threads"]) {
    const int cpu = static_cast<int>(thread["cpu"].get<std::uint64_t>());
    const std::string at = where + " (CPU " + std::to_string(cpu) + ")";
    const std::int64_t start = nanoseconds_field(thread, "start_mono_ns", at);
    const std::int64_t end = nanoseconds_field(thread, "end_mono_ns", at);
    if (start < w.start_mono_ns || end > w.end_mono_ns || end < start)
      fail(at + ": span [" + std::to_string(start) + ", " + std::to_string(end) + ") is not inside the window's");
    // The span starts on an activation: it holds ceil(length / period) of them.
    const auto activations = static_cast<std::uint64_t>((end - start + period - 1) / period);
    const Histogram& h = w.result.per_cpu.at(cpu);
    const std::uint64_t missed = h.missed_periods().value_or(0);  // the native probe always counts them
    if (h.samples() + missed != activations)
      fail(at + ": " + std::to_string(h.samples()) + " samples + " + std::to_string(missed) +
           " missed periods, but its span holds " + std::to_string(activations) + " activations");
    w.span_mono_ns[cpu] = {start, end};
  }
  return w;
}

namespace {

NativeResult parse_fields(const json& doc, std::uint64_t histogram_range_us) {
  NativeResult result;
  result.period_ns = nanoseconds_field(doc, "period_ns", "payload");
  if (result.period_ns == 0) fail("period_ns is 0");
  const std::uint64_t priority = unsigned_field(doc, "priority", "payload");
  if (priority > 99) fail("priority " + std::to_string(priority) + " is above 99");
  result.priority = static_cast<int>(priority);
  const json& policy = field(doc, "policy", "payload");
  if (!policy.is_string()) fail("policy is " + policy.dump() + ", not a string");
  result.policy = policy.get<std::string>();
  const json& interrupted = field(doc, "interrupted", "payload");
  if (!interrupted.is_boolean()) fail("interrupted is " + interrupted.dump() + ", not a boolean");
  result.interrupted = interrupted.get<bool>();
  if (auto it = doc.find("probe_version"); it != doc.end() && it->is_string())
    result.probe_version = it->get<std::string>();
  if (auto it = doc.find("histogram_limit_us"); it != doc.end()) {
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() != histogram_range_us)
      fail("histogram_limit_us is " + it->dump() + " but the probe was started with " +
           std::to_string(histogram_range_us));
  }

  const json& threads = field(doc, "threads", "payload");
  if (!threads.is_array()) fail("\"threads\" is not an array");
  if (threads.empty()) fail("no threads were recorded");
  std::uint64_t spike_capacity = 0;
  if (auto it = doc.find("spikes_per_thread"); it != doc.end()) {
    if (!it->is_number_unsigned()) fail("spikes_per_thread is " + it->dump() + ", not a non-negative integer");
    spike_capacity = it->get<std::uint64_t>();
  }
  if (auto it = doc.find("trace"); it != doc.end()) {
    if (!it->is_object()) fail("trace is " + it->dump() + ", not an object");
    result.trace = *it;
  }
  for (std::size_t i = 0; i < threads.size(); ++i) {
    auto [cpu, histogram] = parse_thread(i, threads[i], histogram_range_us, spike_capacity, result.spikes);
    if (!result.per_cpu.emplace(cpu, std::move(histogram)).second)
      fail("two threads measured CPU " + std::to_string(cpu));
  }
  return result;
}

}  // namespace

NativeResult parse_native_output(std::string_view output, std::uint64_t histogram_range_us) {
  auto decoded = frame::decode_all(output);
  if (!decoded.errors.empty()) {
    std::string all;
    for (const auto& e : decoded.errors) all += (all.empty() ? "" : "; ") + e;
    throw InfraError("vmlat-probe output: " + all);
  }
  const frame::Frame* result = nullptr;
  for (const auto& f : decoded.frames) {
    if (f.kind != kNativeFrameKind)
      throw InfraError("vmlat-probe output: unexpected frame of kind '" + f.kind + "'");
    if (result != nullptr)
      throw InfraError("vmlat-probe output: more than one '" + std::string(kNativeFrameKind) + "' frame");
    result = &f;
  }
  if (result == nullptr)
    throw InfraError("vmlat-probe output: no '" + std::string(kNativeFrameKind) + "' frame (" +
                     std::to_string(output.size()) + " bytes of output)");
  return parse_native_payload(result->payload, histogram_range_us);
}

}  // namespace vmlat::cyclic
