// The core's validity rules for probe data (runner.hpp, "plausibility"):
// what a probe returns must fit its cell, whatever the probe.
#include <gtest/gtest.h>

#include "cell/plausibility.hpp"

using namespace vmlat;
using namespace std::chrono_literals;

namespace {

CellSpec cell(std::chrono::nanoseconds duration, std::chrono::nanoseconds period) {
  CellSpec c;
  c.id = "c";
  c.duration = duration;
  c.period = period;
  return c;
}

std::chrono::nanoseconds secs(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

Histogram samples(std::uint64_t n, std::uint64_t bucket_us = 10, std::uint64_t missed = 0) {
  Histogram h;
  h.add(std::chrono::microseconds(bucket_us), n);
  h.add_missed_periods(missed);
  return h;
}

}  // namespace

TEST(Plausibility, AFullMeasurementFits) {
  EXPECT_EQ(implausible(cell(10s, 1ms), {{0, samples(10000)}, {1, samples(9999)}}, secs(10.2)), "");
  // A native probe that missed periods: samples + missed make the duration.
  EXPECT_EQ(implausible(cell(10s, 1ms), {{0, samples(9000, 10, 1000)}}, secs(10.0)), "");
}

TEST(Plausibility, MoreSamplesThanTheDurationAllowsIsNotAMeasurement) {
  auto why = implausible(cell(10s, 1ms), {{0, samples(10000)}, {1, samples(20000)}}, secs(10.1));
  EXPECT_NE(why, "");
}

TEST(Plausibility, TheMessageNamesTheCpuAndTheNumbers) {
  auto why = implausible(cell(2s, 1ms), {{0, samples(4000)}}, secs(2.1));
  EXPECT_NE(why.find("CPU 0: 4000 samples + 0 missed periods"), std::string::npos) << why;
  EXPECT_NE(why.find("allow at most 2042"), std::string::npos) << why;
}

TEST(Plausibility, FarFewerSamplesWithoutLateWakeUpsIsNotAMeasurement) {
  // A third of the samples, all early: nothing explains the gap.
  auto why = implausible(cell(9s, 1ms), {{0, samples(3000, 10)}}, secs(9.1));
  EXPECT_NE(why.find("less than 50% of the time"), std::string::npos) << why;
}

TEST(Plausibility, SkippedPeriodsAfterLateWakeUpsExplainFewerSamples) {
  // cyclictest skips the activations that passed while it was late, without
  // counting them: 3000 samples 2ms late each at 1ms explain 6000 skipped.
  EXPECT_EQ(implausible(cell(9s, 1ms), {{0, samples(3000, 2000)}}, secs(9.1)), "");
  // Overflows (beyond the histogram) count up to max / period each.
  Histogram h = samples(3000, 10);
  h.add_overflows(300);
  h.set_exact(10us, 20ms, 3000 * 10us + 300 * 20ms);
  EXPECT_EQ(implausible(cell(9s, 1ms), {{0, h}}, secs(9.1)), "");
}

TEST(Plausibility, AProbeThatReturnedEarlyIsNotAMeasurement) {
  auto why = implausible(cell(10s, 1ms), {{0, samples(10000)}}, secs(3.0));
  EXPECT_NE(why.find("returned after 3.00 s of a 10.00 s measurement"), std::string::npos) << why;
  // Within the tolerance: 95% of the duration, less 0.1 s.
  EXPECT_EQ(implausible(cell(10s, 1ms), {{0, samples(10000)}}, secs(9.45)), "");
}

TEST(Plausibility, ACpuWithNoSamplesIsNotAMeasurement) {
  EXPECT_NE(implausible(cell(1s, 1ms), {{0, samples(1000)}, {1, Histogram{}}}, 1s), "");
}
