#include <gtest/gtest.h>

#include "sha256.hpp"
#include "vmlat/units.hpp"

using namespace vmlat;
using namespace std::chrono_literals;

TEST(Units, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("50us"), 50us);
  EXPECT_EQ(parse_duration("1ms"), 1ms);
  EXPECT_EQ(parse_duration("1.5ms"), 1500us);
  EXPECT_EQ(parse_duration("60s"), 60s);
  EXPECT_EQ(parse_duration("2m"), 120s);
  EXPECT_EQ(parse_duration("1h"), 3600s);
  EXPECT_EQ(parse_duration("250ns"), 250ns);
}

TEST(Units, RejectsWithAReason) {
  std::string why;
  EXPECT_FALSE(parse_duration("50", &why));
  EXPECT_NE(why.find("no unit"), std::string::npos) << why;
  EXPECT_FALSE(parse_duration("5 ms", &why));
  EXPECT_NE(why.find("unknown unit"), std::string::npos) << why;
  EXPECT_FALSE(parse_duration("ms", &why));
  EXPECT_NE(why.find("not a duration"), std::string::npos) << why;
  EXPECT_FALSE(parse_duration("1.2.3ms", &why));
  EXPECT_FALSE(parse_duration("0.5ns", &why));
  EXPECT_NE(why.find("whole number"), std::string::npos) << why;
}

TEST(Units, FormatsShortestExactForm) {
  EXPECT_EQ(format_duration(50us), "50us");
  EXPECT_EQ(format_duration(1500us), "1500us");
  EXPECT_EQ(format_duration(1ms), "1ms");
  EXPECT_EQ(format_duration(60s), "1m");
  EXPECT_EQ(format_latency(12345ns), "12.3us");
  EXPECT_EQ(format_latency(4560000ns), "4.56ms");
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding spills into a second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(Units, NumbersAreDigitsAndOnePoint) {
  std::string why;
  EXPECT_EQ(parse_duration(".5ms"), 500us);
  EXPECT_EQ(parse_duration("0050us"), 50us);
  for (const char* bad : {"1e3us", "+5ms", "-5ms", "5.ms.", "..ms", "0x10ms", "infms", "nanms", " 5ms"})
    EXPECT_FALSE(parse_duration(bad, &why)) << bad;
  // A thousand digits is not a number that fits, and says so.
  EXPECT_FALSE(parse_duration(std::string(1000, '9') + "s", &why));
  EXPECT_NE(why.find("too large"), std::string::npos) << why;
  // Exact up to INT64_MAX nanoseconds (292 years), also past 2^53.
  EXPECT_EQ(parse_duration("9223372036854775807ns"), nanoseconds(INT64_MAX));
  EXPECT_EQ(parse_duration("9223372036854775us"), nanoseconds(9223372036854775000));
  EXPECT_FALSE(parse_duration("9223372036854775808ns", &why));
  EXPECT_NE(why.find("too large"), std::string::npos) << why;
  EXPECT_FALSE(parse_duration("9223372037s", &why));
  EXPECT_EQ(parse_duration("1.000000001s"), 1000000001ns);
  EXPECT_FALSE(parse_duration("1.0000000001s", &why));
  EXPECT_NE(why.find("whole number"), std::string::npos) << why;
  EXPECT_EQ(parse_duration("0.5000000000000000000000000000000us"), 500ns) << "trailing zeros are not digits that count";
  for (std::int64_t ns : {std::int64_t{1}, std::int64_t{999}, std::int64_t{60000000000}, (std::int64_t{1} << 53) + 1, INT64_MAX})
    EXPECT_EQ(parse_duration(format_duration(nanoseconds(ns))), nanoseconds(ns)) << ns;
}
