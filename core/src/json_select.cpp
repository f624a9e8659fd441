#include "json_select.hpp"

#include <cstdint>

namespace vmlat {

namespace {

class Reader {
 public:
  Reader(std::string_view text, const MemberRule& rule) : s_(text), rule_(rule) {}

  json document() {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // a byte order mark, skipped as json::parse skips it
    space();
    json out;
    if (at('{')) {
      std::vector<std::string> path;
      out = object(path);
    } else {
      return json::parse(s_);  // not an object: nothing to select
    }
    space();
    if (i_ != s_.size()) fail("unexpected content after the document");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw json::parse_error::create(101, i_ + 1, "syntax error: " + what, nullptr);
  }
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void expect(char c) {
    if (!at(c)) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }

  unsigned hex4() {
    if (s_.size() - i_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return v;
  }

  // A string from its opening quote; true if it holds an escape.
  bool string() {
    expect('"');
    bool escaped = false;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return escaped;
      }
      if (c < 0x20) fail("control character in a string");
      if (c == '\\') {
        escaped = true;
        ++i_;
        if (i_ >= s_.size()) fail("unterminated string");
        const char e = s_[i_++];
        if (e == 'u') {
          const unsigned u = hex4();
          if (u >= 0xDC00 && u <= 0xDFFF) fail("a lone low surrogate");
          if (u >= 0xD800 && u <= 0xDBFF) {
            if (s_.size() - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') fail("a high surrogate without its low one");
            i_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("a high surrogate without its low one");
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          fail("invalid escape");
        }
        continue;
      }
      if (c < 0x80) {
        ++i_;
        continue;
      }
      utf8();
    }
  }

  // One multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates).
  void utf8() {
    const auto b = [&](std::size_t k) { return i_ + k < s_.size() ? static_cast<unsigned char>(s_[i_ + k]) : 0u; };
    const unsigned c = b(0);
    auto in = [](unsigned x, unsigned lo, unsigned hi) { return x >= lo && x <= hi; };
    std::size_t n = 0;
    if (in(c, 0xC2, 0xDF)) n = in(b(1), 0x80, 0xBF) ? 2 : 0;
    else if (c == 0xE0) n = in(b(1), 0xA0, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    else if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF)) n = in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    else if (c == 0xED) n = in(b(1), 0x80, 0x9F) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    else if (c == 0xF0) n = in(b(1), 0x90, 0xBF) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    else if (in(c, 0xF1, 0xF3)) n = in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    else if (c == 0xF4) n = in(b(1), 0x80, 0x8F) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    if (n == 0) fail("invalid UTF-8 in a string");
    i_ += n;
  }

  void digits() {
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') fail("invalid number");
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
  }
  void number() {
    if (at('-')) ++i_;
    if (at('0')) ++i_;
    else digits();
    if (at('.')) {
      ++i_;
      digits();
    }
    if (at('e') || at('E')) {
      ++i_;
      if (at('+') || at('-')) ++i_;
      digits();
    }
  }
  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) fail("invalid literal");
    i_ += word.size();
  }

  // Any value, checked and passed over without building it. Iterative: the
  // nesting of a hostile document costs memory, not stack.
  void skip_value() {
    std::vector<char> open;  // the closing brackets awaited
    while (true) {
      space();
      if (i_ >= s_.size()) fail("unexpected end");
      const char c = s_[i_];
      if (c == '{' || c == '[') {
        ++i_;
        space();
        if (at(c == '{' ? '}' : ']')) {
          ++i_;
        } else {
          open.push_back(c == '{' ? '}' : ']');
          if (c == '{') member_head();
          continue;
        }
      } else if (c == '"') {
        string();
      } else if (c == 't') {
        literal("true");
      } else if (c == 'f') {
        literal("false");
      } else if (c == 'n') {
        literal("null");
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        number();
      } else {
        fail("unexpected character");
      }
      // After a value: a separator, or the end of the containers it closes.
      while (true) {
        if (open.empty()) return;
        space();
        if (at(',')) {
          ++i_;
          if (open.back() == '}') member_head();
          break;
        }
        expect(open.back());
        open.pop_back();
      }
    }
  }
  // A member's key and colon, inside an object being skipped.
  void member_head() {
    space();
    string();
    space();
    expect(':');
  }

  // The span of the value at i_, checked.
  std::string_view value_span() {
    const std::size_t from = i_;
    skip_value();
    return s_.substr(from, i_ - from);
  }

  json object(std::vector<std::string>& path) {
    expect('{');
    json out = json::object();
    space();
    if (at('}')) {
      ++i_;
      return out;
    }
    while (true) {
      space();
      const std::size_t key_from = i_;
      const bool escaped = string();
      std::string key = escaped ? json::parse(s_.substr(key_from, i_ - key_from)).get<std::string>()
                                : std::string(s_.substr(key_from + 1, i_ - key_from - 2));
      space();
      expect(':');
      space();
      const MemberUse use = rule_(path, key, out);
      if (use == MemberUse::skip) {
        skip_value();
      } else if (use == MemberUse::descend && at('{')) {
        path.push_back(key);
        json inner = object(path);
        path.pop_back();
        out[key] = std::move(inner);
      } else {
        out[key] = json::parse(value_span());
      }
      space();
      if (at(',')) {
        ++i_;
        continue;
      }
      expect('}');
      return out;
    }
  }

  std::string_view s_;
  const MemberRule& rule_;
  std::size_t i_ = 0;
};

}  // namespace

json parse_selected(std::string_view text, const MemberRule& rule) { return Reader(text, rule).document(); }

}  // namespace vmlat
