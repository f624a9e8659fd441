// TOML++ 3.3's is_non_ascii_horizontal_whitespace() reaches
// __builtin_unreachable() for U+00A1..U+0499 (undefined behaviour, fixed
// upstream after 3.3). The plan loader keeps non-ASCII out of TOML++ outside
// strings and comments (tests/plans/micro-sign-start), but two paths reach
// the check with text from inside a string: the white space skipped after a
// line-ending backslash in a """ string, and the look-ahead TOML++ does from
// a number into what follows it. These tests run every code point the check
// can get wrong through those paths of the library the release build links
// (Debian's libtomlplusplus.so) and require the right answer, so that a
// library that compiles the undefined behaviour differently is caught here.
// (The fuzz build compiles TOML++ itself, see fuzz/toml_config.hpp.)
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <toml++/toml.h>

namespace {

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  }
  s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// What the check is meant to answer (TOML++'s own table, minus the bug).
bool unicode_horizontal_space(char32_t cp) {
  return cp == 0xA0 || cp == 0x1680 || cp == 0x180E || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F ||
         (cp >= 0x205F && cp <= 0x2060) || cp == 0x3000 || cp == 0xFEFF;
}

// The range the check examines at all: below U+00A0 and above U+FEFF it
// returns false at once. Surrogates are not characters.
template <typename F>
void for_each_checked_code_point(F&& f) {
  for (char32_t cp = 0xA0; cp <= 0xFEFF; ++cp)
    if (cp < 0xD800 || cp > 0xDFFF) f(cp);
}

TEST(TomlUnicode, LineEndingBackslashSkipsOnlyWhiteSpace) {
  int wrong = 0;
  for_each_checked_code_point([&](char32_t cp) {
    const std::string c = utf8(cp);
    const std::string doc = "a = \"\"\"x\\\n  " + c + "y\"\"\"\n";
    std::string got;
    try {
      got = toml::parse(std::string_view(doc), std::string_view("t.toml"))["a"].value_or(std::string("<none>"));
    } catch (const toml::parse_error& e) {
      got = "<error: " + std::string(e.description()) + ">";
    }
    const std::string want = unicode_horizontal_space(cp) ? "xy" : "x" + c + "y";
    if (got != want && ++wrong <= 5) ADD_FAILURE() << "U+" << std::hex << static_cast<unsigned>(cp) << ": got '" << got << "', want '" << want << "'";
  });
  EXPECT_EQ(wrong, 0);
}

TEST(TomlUnicode, LookAheadFromANumberIntoAStringIsAnError) {
  int wrong = 0;
  for_each_checked_code_point([&](char32_t cp) {
    const std::string doc = "a = 0\"" + utf8(cp) + "\"\n";
    try {
      (void)toml::parse(std::string_view(doc), std::string_view("t.toml"));
      if (++wrong <= 5) ADD_FAILURE() << "U+" << std::hex << static_cast<unsigned>(cp) << ": accepted";
    } catch (const toml::parse_error& e) {
      if (e.source().begin.line != 1 && ++wrong <= 5) ADD_FAILURE() << "U+" << std::hex << static_cast<unsigned>(cp) << ": error not on line 1";
    }
  });
  EXPECT_EQ(wrong, 0);
}

}  // namespace
