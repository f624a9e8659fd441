// parse_cyclictest_json against files captured from rt-tests 2.4's cyclictest
// on the development VM (plugins/cyclic/testdata), and mutations of them.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <vmlat/errors.hpp>
#include <vmlat/json.hpp>

#include "cyclictest_parse.hpp"
#include "testdata.hpp"

namespace {

using namespace std::chrono_literals;
using vmlat::Histogram;
using vmlat::InfraError;
using vmlat::json;
using vmlat::cyclic::parse_cyclictest_json;

// The InfraError message of parsing `text`, or "" if it parsed.
std::string parse_error(const std::string& text, std::uint64_t range_us) {
  try {
    parse_cyclictest_json(text, range_us);
  } catch (const InfraError& e) {
    return e.what();
  }
  return "";
}

// Applies `mutate` to a real capture and returns the parse error.
std::string mutated_error(const std::function<void(json&)>& mutate, std::uint64_t range_us = 100) {
  json doc = json::parse(testdata("ct-2cpu-1ms-h100.json"));
  mutate(doc);
  return parse_error(doc.dump(2), range_us);
}

TEST(CyclictestParse, TwoCpusWithinRange) {
  // cyclictest -m -p 80 -i 1000 -t 2 -a 0,1 -D 2 -q -h 100
  auto per_cpu = parse_cyclictest_json(testdata("ct-2cpu-1ms-h100.json"), 100);
  ASSERT_EQ(per_cpu.size(), 2u);
  ASSERT_TRUE(per_cpu.count(0) && per_cpu.count(1));

  const Histogram& cpu0 = per_cpu.at(0);
  EXPECT_EQ(cpu0.samples(), 2000u);
  EXPECT_EQ(cpu0.overflows(), 0u);
  EXPECT_EQ(cpu0.min(), 7us);
  EXPECT_EQ(cpu0.max(), 74us);
  EXPECT_EQ(cpu0.buckets().size(), 20u);
  EXPECT_EQ(cpu0.buckets().at(13), 946u);
  EXPECT_EQ(cpu0.buckets().at(74), 1u);
  EXPECT_EQ(cpu0.buckets().count(22), 0u);
  EXPECT_EQ(cpu0.sum(), 27'200'000ns);  // avg 13.60us * 2000
  EXPECT_EQ(cpu0.mean(), 13'600ns);
  EXPECT_EQ(cpu0.percentile(0.5), 13us);  // rank 1000: 146 samples below 13us, 1092 up to it
  EXPECT_EQ(cpu0.percentile(0.99), 18us);  // rank 1980: 1975 samples up to 17us, 1983 up to 18us
  EXPECT_EQ(cpu0.percentile(1.0), 74us);

  const Histogram& cpu1 = per_cpu.at(1);
  EXPECT_EQ(cpu1.samples(), 2000u);
  EXPECT_EQ(cpu1.overflows(), 0u);
  EXPECT_EQ(cpu1.min(), 9us);
  EXPECT_EQ(cpu1.max(), 91us);
  EXPECT_EQ(cpu1.buckets().at(14), 897u);
  EXPECT_EQ(cpu1.sum(), 27'520'000ns);  // avg 13.76us * 2000
  // cyclictest skips the activations after a late wake-up without counting
  // them: unknown, never 0 (issue 16).
  EXPECT_FALSE(cpu0.missed_periods().has_value());
  EXPECT_FALSE(cpu1.missed_periods().has_value());
  EXPECT_TRUE(cpu0.to_json().at("missed_periods").is_null());
}

TEST(CyclictestParse, OverflowsBeyondASmallRange) {
  // cyclictest -q -m -p 95 -i 1000 -t 2 -a 0,1 -D 2 -h 10: nearly every
  // sample is above 10us and only counted in "cycles".
  auto per_cpu = parse_cyclictest_json(testdata("ct-2cpu-1ms-h10-overflow.json"), 10);
  ASSERT_EQ(per_cpu.size(), 2u);
  const Histogram& cpu0 = per_cpu.at(0);
  EXPECT_EQ(cpu0.samples(), 2000u);
  EXPECT_EQ(cpu0.overflows(), 1998u);
  EXPECT_EQ(cpu0.buckets().size(), 2u);
  EXPECT_EQ(cpu0.buckets().at(6), 1u);
  EXPECT_EQ(cpu0.buckets().at(9), 1u);
  EXPECT_EQ(cpu0.min(), 6us);
  EXPECT_EQ(cpu0.max(), 117us);
  EXPECT_EQ(cpu0.percentile(0.5), 117us);  // the median is an overflow: reported as max
  const Histogram& cpu1 = per_cpu.at(1);
  EXPECT_EQ(cpu1.overflows(), 1998u);
  EXPECT_EQ(cpu1.min(), 8us);
  EXPECT_EQ(cpu1.max(), 145us);
}

TEST(CyclictestParse, SingleCpuWithTheDefaultRange) {
  // cyclictest -q -m -p 95 -i 500 -t 1 -a 1 -l 2000 -h 20000 --histfile=/dev/null
  auto per_cpu = parse_cyclictest_json(testdata("ct-1cpu-500us-h20000.json"), 20000);
  ASSERT_EQ(per_cpu.size(), 1u);
  ASSERT_EQ(per_cpu.count(1), 1u);  // thread 0 ran on CPU 1
  const Histogram& h = per_cpu.at(1);
  EXPECT_EQ(h.samples(), 2000u);
  EXPECT_EQ(h.overflows(), 0u);
  EXPECT_EQ(h.min(), 7us);
  EXPECT_EQ(h.max(), 122us);
  EXPECT_EQ(h.buckets().at(13), 1156u);
  EXPECT_EQ(h.buckets().at(122), 1u);
  EXPECT_EQ(h.sum(), 28'340'000ns);  // avg 14.17us * 2000
}

TEST(CyclictestParse, RejectsARunWithoutHistogram) {
  // The same command line without -h: cyclictest writes an empty histogram.
  auto message = parse_error(testdata("ct-1cpu-no-histogram.json"), 20000);
  EXPECT_NE(message.find("histogram is empty although min 8us"), std::string::npos) << message;
  EXPECT_NE(message.find("without -h"), std::string::npos) << message;
}

TEST(CyclictestParse, RejectsBucketsBeyondTheExpectedRange) {
  auto message = parse_error(testdata("ct-2cpu-1ms-h100.json"), 50);
  EXPECT_NE(message.find("bucket 62us is outside the 50us range"), std::string::npos) << message;
}

TEST(CyclictestParse, RejectsMalformedJson) {
  std::string text = testdata("ct-2cpu-1ms-h100.json");
  auto message = parse_error(text.substr(0, text.size() / 2), 100);
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;
  EXPECT_NE(parse_error("", 100).find("malformed JSON"), std::string::npos);
  // cyclictest prints "nan" as avg when a thread never ran.
  EXPECT_NE(parse_error(R"({"num_threads":1,"thread":{"0":{"avg":-nan}}})", 100).find("malformed JSON"),
            std::string::npos);
  EXPECT_NE(parse_error("[1, 2]", 100).find("not a JSON object"), std::string::npos);
}

TEST(CyclictestParse, RejectsMissingOrMistypedFields) {
  for (const char* key : {"cycles", "min", "max", "avg", "cpu", "histogram"}) {
    auto message = mutated_error([&](json& d) { d["thread"]["1"].erase(key); });
    EXPECT_NE(message.find(std::string("thread 1")), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("missing \"") + key + "\""), std::string::npos) << message;
  }
  EXPECT_NE(mutated_error([](json& d) { d.erase("thread"); }).find("missing \"thread\""), std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d.erase("num_threads"); }).find("missing \"num_threads\""), std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d["thread"]["0"]["cycles"] = "2000"; }).find("not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d["thread"]["0"]["cpu"] = -1; }).find("\"cpu\" is -1"), std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d["thread"]["0"]["histogram"] = json::array(); })
                .find("\"histogram\" is not an object"),
            std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d["thread"]["0"]["histogram"]["1x"] = 1; }).find("bucket \"1x\""),
            std::string::npos);
  EXPECT_NE(mutated_error([](json& d) { d["thread"]["0"]["histogram"]["13"] = -946; }).find("count -946"),
            std::string::npos);
}

TEST(CyclictestParse, RejectsInconsistentCounts) {
  // More samples in the histogram than cycles.
  auto message = mutated_error([](json& d) { d["thread"]["0"]["cycles"] = 1999; });
  EXPECT_NE(message.find("thread 0 (CPU 0): histogram holds more samples than the 1999 cycles"), std::string::npos)
      << message;
  // Fewer: samples would be overflows, but max is inside the range.
  message = mutated_error([](json& d) { d["thread"]["0"]["cycles"] = 2001; });
  EXPECT_NE(message.find("1 of 2001 cycles are missing from the histogram although max 74us"), std::string::npos)
      << message;
  // Extremes that disagree with the histogram.
  message = mutated_error([](json& d) { d["thread"]["0"]["min"] = 5; });
  EXPECT_NE(message.find("lowest histogram bucket 7us does not match min 5us"), std::string::npos) << message;
  message = mutated_error([](json& d) { d["thread"]["1"]["max"] = 95; });
  EXPECT_NE(message.find("highest histogram bucket 91us does not match max 95us"), std::string::npos) << message;
  message = mutated_error([](json& d) {
    d["thread"]["0"]["min"] = 80;
  });
  EXPECT_NE(message.find("min 80us is above max 74us"), std::string::npos) << message;
  message = mutated_error([](json& d) { d["thread"]["0"]["avg"] = 75.5; });
  EXPECT_NE(message.find("avg 75.5us is outside"), std::string::npos) << message;
  message = mutated_error([](json& d) {
    d["thread"]["0"]["cycles"] = 0;
    d["thread"]["0"]["histogram"] = json::object();
  });
  EXPECT_NE(message.find("recorded no cycles"), std::string::npos) << message;
}

TEST(CyclictestParse, RejectsThreadBookkeepingErrors) {
  auto message = mutated_error([](json& d) { d["num_threads"] = 3; });
  EXPECT_NE(message.find("num_threads is 3 but 2 threads are listed"), std::string::npos) << message;
  message = mutated_error([](json& d) { d["thread"]["1"]["cpu"] = 0; });
  EXPECT_NE(message.find("two threads measured CPU 0"), std::string::npos) << message;
  message = mutated_error([](json& d) {
    d["thread"] = json::object();
    d["num_threads"] = 0;
  });
  EXPECT_NE(message.find("no threads"), std::string::npos) << message;
}

}  // namespace
