// valid_utf8 and dump_json: results stay valid whatever bytes a message quotes.
#include <gtest/gtest.h>

#include "vmlat/json.hpp"
#include "vmlat/text.hpp"

TEST(ValidUtf8, KeepsWellFormedTextAndReplacesEverythingElse) {
  EXPECT_EQ(vmlat::valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(vmlat::valid_utf8("\xC2\xB5s and \xE2\x82\xAC and \xF0\x9F\x98\x80"), "\xC2\xB5s and \xE2\x82\xAC and \xF0\x9F\x98\x80");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(vmlat::valid_utf8("a\xF5z"), "a" + fffd + "z");               // never a lead byte
  EXPECT_EQ(vmlat::valid_utf8("\xC0\xAF"), fffd + fffd);                  // overlong '/'
  EXPECT_EQ(vmlat::valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);       // a surrogate
  EXPECT_EQ(vmlat::valid_utf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(vmlat::valid_utf8("cut \xE2\x82"), "cut " + fffd + fffd);      // truncated at the end
  EXPECT_EQ(vmlat::valid_utf8(std::string("nul\0ok", 6)), std::string("nul\0ok", 6));
}

TEST(ValidUtf8, ResultDocumentsWithRawBytesStillSerialize) {
  vmlat::json j{{"error", std::string("parse error near '\xF5\x1A'")}};
  EXPECT_THROW((void)j.dump(), vmlat::json::type_error);
  auto text = vmlat::dump_json(j);
  EXPECT_NO_THROW((void)vmlat::json::parse(text));
}
