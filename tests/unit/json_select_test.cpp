// parse_selected (core/src/json_select.hpp): the members a reader keeps are
// exactly json::parse's, skipped ones are left out but still checked, and
// invalid text fails as json::parse fails.
#include <gtest/gtest.h>

#include "json_select.hpp"

using namespace vmlat;

namespace {

// Skips "histogram" and "per_cpu" anywhere, descends into every object.
MemberUse drop_histograms(const std::vector<std::string>&, const std::string& key, const json&) {
  if (key == "histogram" || key == "per_cpu") return MemberUse::skip;
  return MemberUse::descend;
}

MemberUse keep_all(const std::vector<std::string>&, const std::string&, const json&) { return MemberUse::keep; }

const char* kDoc = R"({
  "schema": "vmlat-cell-result/1",
  "cell": {"id": "a\"b\u00e9", "axes": {"period": "1ms"}, "period_ns": 1000000},
  "merged": {
    "stats": {"samples": 3, "p50_ns": 7000, "mean_ns": 7.5e3, "max_ns": -0},
    "histogram": {"buckets": [[7, 2], [8, 1]], "note": "brackets ] } in \" a string \ud83d\ude00 é", "x": [true, false, null, {}, []]}
  },
  "per_cpu": {"0": {"stats": {}, "histogram": {"buckets": [[1, 1e-3], [2, -12.5E+2]]}}},
  "empty": {}, "list": [], "unicode": "\u00e9 é 😀"
})";

}  // namespace

TEST(JsonSelect, KeepsExactlyWhatJsonParseGivesLessTheSkippedMembers) {
  json full = json::parse(kDoc);
  json selected = parse_selected(kDoc, drop_histograms);
  EXPECT_FALSE(selected["merged"].contains("histogram"));
  EXPECT_FALSE(selected.contains("per_cpu"));
  full["merged"].erase("histogram");
  full.erase("per_cpu");
  EXPECT_EQ(selected.dump(), full.dump());  // order and values, escapes decoded alike
  EXPECT_EQ(selected["cell"]["id"].get<std::string>(), "a\"b\xc3\xa9");
  // Kept whole, it is json::parse's document.
  EXPECT_EQ(parse_selected(kDoc, keep_all).dump(), json::parse(kDoc).dump());
  // The rule sees the path and what was kept before the member.
  std::vector<std::string> seen;
  parse_selected(kDoc, [&](const std::vector<std::string>& path, const std::string& key, const json& so_far) {
    if (key == "histogram") {
      std::string p;
      for (const auto& k : path) p += k + "/";
      seen.push_back(p + key + (so_far.contains("stats") ? " after stats" : ""));
    }
    return drop_histograms(path, key, so_far);
  });
  EXPECT_EQ(seen, std::vector<std::string>{"merged/histogram after stats"});
}

TEST(JsonSelect, ASkippedMemberIsStillChecked) {
  for (const char* bad : {
           R"({"histogram": [[1, 2], [3, 4]}, "a": 1})",      // mismatched bracket
           R"({"histogram": [1, 2,], "a": 1})",               // trailing comma
           R"({"histogram": {"k" 1}, "a": 1})",               // missing colon
           R"({"histogram": [01], "a": 1})",                  // leading zero
           R"({"histogram": [1.], "a": 1})",                  // no fraction digits
           R"({"histogram": [tru], "a": 1})",                 // literal
           R"({"histogram": "\x", "a": 1})",                  // escape
           R"({"histogram": "\ud800", "a": 1})",              // lone surrogate
           "{\"histogram\": \"\xff\", \"a\": 1}",             // not UTF-8
           "{\"histogram\": \"\xc0\xaf\", \"a\": 1}",         // overlong UTF-8
           "{\"histogram\": \"a\nb\", \"a\": 1}",             // control character
           R"({"histogram": [1, 2)",                          // truncated
           R"({"histogram": [], "a": 1} x)",                  // trailing content
           R"({"a": 1,})",                                    // trailing comma in the kept object
       }) {
    EXPECT_THROW(json::parse(bad), json::parse_error) << bad;  // the fixture itself is invalid
    EXPECT_THROW(parse_selected(bad, drop_histograms), json::parse_error) << bad;
  }
}

TEST(JsonSelect, OtherRootsAndAByteOrderMarkAreAsJsonParse) {
  EXPECT_EQ(parse_selected("[1, {\"histogram\": 2}]", drop_histograms), json::parse("[1, {\"histogram\": 2}]"));
  EXPECT_EQ(parse_selected("\xEF\xBB\xBF{\"a\": 1, \"histogram\": 2}", drop_histograms), json::parse(R"({"a": 1})"));
  EXPECT_EQ(parse_selected(" { } ", drop_histograms), json::object());
  // A member descended into that is not an object is kept as it is.
  EXPECT_EQ(parse_selected(R"({"merged": null, "series": [1]})", drop_histograms), json::parse(R"({"merged": null, "series": [1]})"));
  // Deep nesting inside a skipped member costs no stack.
  std::string deep = "{\"histogram\": " + std::string(200000, '[') + std::string(200000, ']') + ", \"a\": 1}";
  EXPECT_EQ(parse_selected(deep, drop_histograms), json::parse(R"({"a": 1})"));
}
