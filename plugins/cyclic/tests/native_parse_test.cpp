// parse_native_output / parse_native_payload against output captured from
// vmlat-probe (plugins/cyclic/testdata/native-*.out) and mutations of it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <map>
#include <string>
#include <vector>

#include <vmlat/errors.hpp>
#include <vmlat/frame.hpp>
#include <vmlat/json.hpp>

#include "native_parse.hpp"
#include "testdata.hpp"

namespace {

using namespace std::chrono_literals;
using vmlat::Histogram;
using vmlat::InfraError;
using vmlat::json;
using vmlat::cyclic::NativeResult;
using vmlat::cyclic::parse_native_output;
using vmlat::cyclic::parse_native_payload;

// The payload of the one frame in a captured output.
json captured_payload(const std::string& name) {
  auto decoded = vmlat::frame::decode_all(testdata(name));
  EXPECT_TRUE(decoded.errors.empty());
  EXPECT_EQ(decoded.frames.size(), 1u);
  return json::parse(decoded.frames.at(0).payload);
}

std::string output_error(const std::string& output, std::uint64_t range_us) {
  try {
    parse_native_output(output, range_us);
  } catch (const InfraError& e) {
    return e.what();
  }
  return "";
}

// Re-frames a mutated copy of the 2-CPU capture (valid CRC) and returns the error.
std::string mutated_error(const std::function<void(json&)>& mutate, std::uint64_t range_us = 20000) {
  json payload = captured_payload("native-2cpu-1ms.out");
  mutate(payload);
  return output_error(vmlat::frame::encode("native-probe-result", payload.dump()), range_us);
}

TEST(NativeParse, TwoCpus) {
  // vmlat-probe --period-ns 1000000 --duration-ms 1000 --cpus 0,1 --priority 95 --histogram-us 20000
  NativeResult r = parse_native_output(testdata("native-2cpu-1ms.out"), 20000);
  EXPECT_EQ(r.period_ns, 1'000'000);
  EXPECT_EQ(r.priority, 95);
  EXPECT_EQ(r.policy, "fifo");
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.probe_version, "0.1.0");
  ASSERT_EQ(r.per_cpu.size(), 2u);
  const Histogram& cpu0 = r.per_cpu.at(0);
  EXPECT_EQ(cpu0.samples(), 1000u);
  EXPECT_EQ(cpu0.overflows(), 0u);
  EXPECT_EQ(cpu0.missed_periods(), 0u);
  EXPECT_EQ(cpu0.min(), 11170ns);
  EXPECT_EQ(cpu0.max(), 57412ns);
  EXPECT_EQ(cpu0.sum(), 14427885ns);
  EXPECT_EQ(cpu0.buckets().at(13), 699u);
  EXPECT_EQ(cpu0.buckets().at(57), 1u);
  const Histogram& cpu1 = r.per_cpu.at(1);
  EXPECT_EQ(cpu1.samples(), 1000u);
  EXPECT_EQ(cpu1.min(), 13040ns);
  EXPECT_EQ(cpu1.max(), 67287ns);
  EXPECT_EQ(cpu1.sum(), 16228355ns);
}

TEST(NativeParse, AllOverflows) {
  // --period-ns 500000 --duration-ms 500 --cpus 1 --histogram-us 10
  NativeResult r = parse_native_output(testdata("native-1cpu-500us-h10-overflow.out"), 10);
  ASSERT_EQ(r.per_cpu.size(), 1u);
  const Histogram& h = r.per_cpu.at(1);
  EXPECT_EQ(h.samples(), 1000u);
  EXPECT_EQ(h.overflows(), 1000u);
  EXPECT_TRUE(h.buckets().empty());
  EXPECT_EQ(h.min(), 11538ns);
  EXPECT_EQ(h.max(), 168690ns);
  EXPECT_EQ(h.percentile(0.5), 168690ns);
}

TEST(NativeParse, Interrupted) {
  // Stopped with SIGINT after ~0.4 s of a 5 s run (the probe exited 130).
  NativeResult r = parse_native_output(testdata("native-1cpu-interrupted.out"), 20000);
  EXPECT_TRUE(r.interrupted);
  ASSERT_EQ(r.per_cpu.count(0), 1u);
  EXPECT_EQ(r.per_cpu.at(0).samples(), 396u);
  EXPECT_EQ(r.per_cpu.at(0).max(), 42547ns);
}

TEST(NativeParse, IgnoresNoiseAroundTheFrame) {
  std::string output = "booting...\n" + testdata("native-2cpu-1ms.out") + "login: ";
  EXPECT_EQ(parse_native_output(output, 20000).per_cpu.size(), 2u);
}

TEST(NativeParse, RejectsFrameErrors) {
  const std::string good = testdata("native-2cpu-1ms.out");
  // One payload byte changed: "samples":1000 -> "samples":1001 (CRC mismatch).
  std::string corrupt = good;
  const auto at = corrupt.find("\"samples\":1000");
  ASSERT_NE(at, std::string::npos);
  corrupt[at + std::string("\"samples\":100").size()] = '1';
  auto message = output_error(corrupt, 20000);
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;

  message = output_error(good.substr(0, good.size() - 20), 20000);
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;

  message = output_error("vmlat-probe: nothing to say\n", 20000);
  EXPECT_NE(message.find("no 'native-probe-result' frame"), std::string::npos) << message;

  message = output_error(good + good, 20000);
  EXPECT_NE(message.find("more than one"), std::string::npos) << message;

  message = output_error(vmlat::frame::encode("something-else", "{}") + good, 20000);
  EXPECT_NE(message.find("unexpected frame of kind 'something-else'"), std::string::npos) << message;
}

TEST(NativeParse, RejectsWrongSchemaAndFields) {
  auto message = mutated_error([](json& p) { p["schema"] = "vmlat-native-probe/2"; });
  EXPECT_NE(message.find("schema is \"vmlat-native-probe/2\""), std::string::npos) << message;
  message = mutated_error([](json& p) { p.erase("schema"); });
  EXPECT_NE(message.find("missing \"schema\""), std::string::npos) << message;
  for (const char* key : {"samples", "min_ns", "max_ns", "sum_ns", "overflows", "missed_periods", "histogram", "cpu"}) {
    message = mutated_error([&](json& p) { p["threads"][1].erase(key); });
    EXPECT_NE(message.find(std::string("thread 1")), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("missing \"") + key + "\""), std::string::npos) << message;
  }
  message = mutated_error([](json& p) { p["threads"][0]["histogram"][0] = json::array({11}); });
  EXPECT_NE(message.find("is not [bucket_us, count]"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["threads"] = json::array(); });
  EXPECT_NE(message.find("no threads"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["interrupted"] = "no"; });
  EXPECT_NE(message.find("interrupted is \"no\""), std::string::npos) << message;
  message = output_error(vmlat::frame::encode("native-probe-result", "{\"schema\":"), 20000);
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;
}

TEST(NativeParse, RejectsInconsistentCounts) {
  auto message = mutated_error([](json& p) { p["threads"][0]["samples"] = 1001; });
  EXPECT_NE(message.find("thread 0 (CPU 0): samples 1001 != histogram 1000 + overflows 0"), std::string::npos)
      << message;
  message = mutated_error([](json& p) { p["threads"][0]["samples"] = 999; });
  EXPECT_NE(message.find("histogram holds more than the 999 samples"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["threads"][1]["overflows"] = 3; });
  EXPECT_NE(message.find("samples 1000 != histogram 1000 + overflows 3"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["threads"][0]["min_ns"] = 60000; });
  EXPECT_NE(message.find("min_ns 60000 is above max_ns 57412"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["threads"][0]["min_ns"] = 12000; });
  EXPECT_NE(message.find("histogram buckets 11..57us lie outside [min_ns 12000, max_ns 57412]"), std::string::npos)
      << message;
  message = mutated_error([](json& p) { p["threads"][0]["sum_ns"] = 1000; });
  EXPECT_NE(message.find("sum_ns 1000 is not between"), std::string::npos) << message;
  message = mutated_error([](json& p) { p["threads"][1]["cpu"] = 0; });
  EXPECT_NE(message.find("two threads measured CPU 0"), std::string::npos) << message;
  // A different range than the probe was started with.
  message = mutated_error([](json&) {}, 50);
  EXPECT_NE(message.find("histogram_limit_us is 20000 but the probe was started with 50"), std::string::npos)
      << message;
  message = mutated_error([](json& p) { p.erase("histogram_limit_us"); }, 50);
  EXPECT_NE(message.find("bucket 57us is outside the 50us range"), std::string::npos) << message;
  // Overflows must match max against the range.
  message = mutated_error([](json& p) {
    p["threads"][0]["overflows"] = 1;
    p["threads"][0]["samples"] = 1001;
  });
  EXPECT_NE(message.find("1 overflows although max_ns 57412 is inside the 20000us range"), std::string::npos)
      << message;
}

TEST(NativeParse, ThreadWithoutSamplesIsEmpty) {
  json payload = captured_payload("native-1cpu-interrupted.out");
  auto& t = payload["threads"][0];
  t["samples"] = 0;
  t["histogram"] = json::array();
  t["min_ns"] = 0;
  t["max_ns"] = 0;
  t["sum_ns"] = 0;
  NativeResult r = parse_native_payload(payload.dump(), 20000);
  EXPECT_TRUE(r.per_cpu.at(0).empty());
}


// vmlat-probe --window-ms 200 --duration-ms 600 --cpus 0,1 --spikes 2: three
// windows, the last final.
std::vector<json> captured_windows() {
  auto decoded = vmlat::frame::decode_all(testdata("native-window-2cpu.out"));
  EXPECT_TRUE(decoded.errors.empty());
  std::vector<json> out;
  for (const auto& f : decoded.frames) {
    EXPECT_EQ(f.kind, vmlat::cyclic::kNativeWindowFrameKind);
    out.push_back(json::parse(f.payload));
  }
  return out;
}

std::string window_error(const json& payload) {
  try {
    vmlat::cyclic::parse_native_window(payload.dump(), 20000);
  } catch (const InfraError& e) {
    return e.what();
  }
  return "";
}

TEST(NativeWindowParse, CapturedWindowsTileTime) {
  const auto windows = captured_windows();
  ASSERT_EQ(windows.size(), 3u);
  std::map<int, std::int64_t> last_end;
  std::uint64_t activations = 0;
  for (std::size_t i = 0; i < windows.size(); ++i) {
    auto w = vmlat::cyclic::parse_native_window(windows[i].dump(), 20000);
    EXPECT_EQ(w.index, i);
    EXPECT_EQ(w.final, i == 2);
    EXPECT_EQ(w.window_ns, 200'000'000);
    ASSERT_EQ(w.span_mono_ns.size(), 2u);
    for (const auto& [cpu, span] : w.span_mono_ns) {
      if (last_end.count(cpu)) EXPECT_EQ(span.first, last_end[cpu]) << "window " << i << " CPU " << cpu;
      last_end[cpu] = span.second;
      const Histogram& h = w.result.per_cpu.at(cpu);
      activations += h.samples() + h.missed_periods().value();
      EXPECT_LE(h.max(), 20ms);
    }
    EXPECT_LE(w.result.spikes.size(), 4u);
    for (const auto& sp : w.result.spikes) EXPECT_GT(sp.realtime_ns, w.start_unix_ns - 1'000'000'000);
  }
  // 600ms at 1ms on two CPUs.
  EXPECT_EQ(activations, 1200u);
}

TEST(NativeWindowParse, RejectsUnaccountedActivationsAndSpansOutsideTheWindow) {
  const json w0 = captured_windows().at(0);
  EXPECT_EQ(window_error(w0), "");
  json lost = w0;
  // One activation neither a sample nor a missed period (kept consistent otherwise).
  lost["threads"][0]["end_mono_ns"] = lost["threads"][0]["end_mono_ns"].get<std::int64_t>() + 1'000'000;
  lost["window"]["end_mono_ns"] = lost["threads"][0]["end_mono_ns"];
  EXPECT_NE(window_error(lost).find("activations"), std::string::npos) << window_error(lost);
  json outside = w0;
  outside["threads"][1]["start_mono_ns"] = outside["window"]["start_mono_ns"].get<std::int64_t>() - 1;
  EXPECT_NE(window_error(outside).find("not inside the window"), std::string::npos) << window_error(outside);
  json backwards = w0;
  backwards["window"]["end_mono_ns"] = backwards["window"]["start_mono_ns"].get<std::int64_t>() - 1;
  EXPECT_NE(window_error(backwards).find("before it starts"), std::string::npos) << window_error(backwards);
  json schema = w0;
  schema["schema"] = "vmlat-native-probe/1";
  EXPECT_NE(window_error(schema).find("schema"), std::string::npos);
  json no_window = w0;
  no_window.erase("window");
  EXPECT_NE(window_error(no_window), "");
}

}  // namespace
