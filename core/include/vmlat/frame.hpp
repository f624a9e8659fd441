// vmlat frame v1: a text-safe framing for results that travel over serial
// consoles and process stdout, possibly mixed with unrelated output.
//
// Wire format (the encoder writes exactly this):
//
//   @@VMLAT1 <kind> <payload-length-decimal> <crc32-8-lowercase-hex>\n
//   <payload bytes, exactly payload-length of them>\n
//   @@END <same crc32 hex>\n
//
// * kind: token [a-z0-9-]{1,32}
// * crc32: IEEE 802.3 / zlib crc32 over the payload bytes
// * a header is only recognised at the start of a line (or of the stream);
//   anything between frames is ignored (kernel boot noise, shell prompts...).
//
// The decoder is deliberately a little more lenient than the encoder so that
// frames survive a tty that turns "\n" into "\r\n" around the header and the
// trailer (the payload itself must arrive byte-exact, which the CRC checks):
//   - a '\r' directly before the header's '\n' is ignored,
//   - "\r\n" is accepted wherever the trailer expects "\n",
//   - hex digits are compared case-insensitively,
//   - at end of stream, the trailer's final newline may be missing.
// A frame is returned only if its header parses, its payload has the declared
// length, the trailer repeats the header's CRC and the CRC matches the
// payload. (The CRC covers the payload only, so a corrupted byte in the kind
// token that leaves a valid token cannot be detected; consumers should check
// that the kind is one they expect.) Everything else is reported through take_errors() and the decoder
// resynchronises on the next header.
//
// Header-only; depends on the C++ standard library only.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmlat::frame {

inline constexpr std::string_view kHeaderMagic = "@@VMLAT1 ";
inline constexpr std::string_view kTrailerMagic = "@@END ";
inline constexpr std::size_t kMaxKindLength = 32;
// Largest payload the encoder produces and the decoder accepts (64 MiB).
inline constexpr std::size_t kMaxPayloadLength = std::size_t{64} << 20;
// A header line longer than this (without its newline) is malformed.
inline constexpr std::size_t kMaxHeaderLineLength = 128;

namespace detail {

constexpr std::array<std::uint32_t, 256> make_crc32_table() noexcept {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) {
      c = (c & 1U) != 0 ? (0xEDB88320U ^ (c >> 1)) : (c >> 1);
    }
    table[i] = c;
  }
  return table;
}

inline constexpr std::array<std::uint32_t, 256> kCrc32Table = make_crc32_table();

constexpr bool is_kind_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(v));
  return std::string(buf, 8);
}

// Printable, bounded rendering of untrusted bytes for error messages.
inline std::string quote(std::string_view s, std::size_t max_chars = 80) {
  std::string out;
  const std::size_t n = s.size() < max_chars ? s.size() : max_chars;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\'') {
      out += "\\'";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  if (n < s.size()) out += "...";
  return out;
}

}  // namespace detail

// IEEE 802.3 CRC-32 (reflected polynomial 0xEDB88320, init and final xor
// 0xFFFFFFFF), identical to zlib's crc32(). crc32("123456789") == 0xcbf43926.
// `previous` allows incremental computation: crc32(b, crc32(a)) == crc32(a+b).
inline std::uint32_t crc32(std::string_view data, std::uint32_t previous) noexcept {
  std::uint32_t c = previous ^ 0xFFFFFFFFU;
  for (const char ch : data) {
    c = detail::kCrc32Table[(c ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFU;
}

inline std::uint32_t crc32(std::string_view data) noexcept { return crc32(data, 0); }

// True if `kind` is a valid frame kind token: [a-z0-9-]{1,32}.
inline bool is_valid_kind(std::string_view kind) noexcept {
  if (kind.empty() || kind.size() > kMaxKindLength) return false;
  for (const char c : kind) {
    if (!detail::is_kind_char(c)) return false;
  }
  return true;
}

// Encodes one frame. Throws std::invalid_argument if `kind` is not a valid
// token or the payload is larger than kMaxPayloadLength.
inline std::string encode(std::string_view kind, std::string_view payload) {
  if (!is_valid_kind(kind)) {
    throw std::invalid_argument("vmlat::frame::encode: invalid frame kind '" +
                                detail::quote(kind) + "' (expected [a-z0-9-]{1,32})");
  }
  if (payload.size() > kMaxPayloadLength) {
    throw std::invalid_argument("vmlat::frame::encode: payload of " + std::to_string(payload.size()) +
                                " bytes exceeds the frame limit of " +
                                std::to_string(kMaxPayloadLength) + " bytes");
  }
  const std::string crc = detail::hex8(crc32(payload));
  const std::string length = std::to_string(payload.size());
  std::string out;
  out.reserve(kHeaderMagic.size() + kind.size() + length.size() + payload.size() + 40);
  out.append(kHeaderMagic);
  out.append(kind);
  out += ' ';
  out.append(length);
  out += ' ';
  out.append(crc);
  out += '\n';
  out.append(payload);
  out += '\n';
  out.append(kTrailerMagic);
  out.append(crc);
  out += '\n';
  return out;
}

struct Frame {
  std::string kind;
  std::string payload;

  friend bool operator==(const Frame&, const Frame&) = default;
};

// Incremental decoder: feed() bytes as they arrive (in any chunking), then
// pull verified frames with next(). Call finish() at end of stream so that a
// partially received frame is reported as truncated. After finish() the
// decoder is ready to decode a new stream.
class Decoder {
 public:
  void feed(std::string_view bytes) {
    buf_.append(bytes);
    process(false);
    compact();
  }

  // Next complete, verified frame, in stream order.
  std::optional<Frame> next() {
    if (ready_.empty()) return std::nullopt;
    Frame f = std::move(ready_.front());
    ready_.pop_front();
    return f;
  }

  // Problems seen so far (cleared by this call), in stream order.
  std::vector<std::string> take_errors() {
    std::vector<std::string> out;
    out.swap(errors_);
    return out;
  }

  // End of stream.
  void finish() {
    process(true);
    buf_.clear();
    off_ = 0;
    state_ = State::Scan;
    at_line_start_ = true;
  }

  // Bytes currently held in the input buffer. Between frames this is at most
  // a few bytes (a possible partial header marker); while a frame is being
  // received it is bounded by the header line plus the declared payload
  // length (<= kMaxPayloadLength) plus the trailer.
  std::size_t buffered() const noexcept { return buf_.size() - off_; }

  // Verified frames not yet returned by next().
  std::size_t pending_frames() const noexcept { return ready_.size(); }

  // The text between frames is dropped unless keep_text(true): then
  // take_text() returns it (cleared by the call), in stream order, so that a
  // console carrying frames among its own output can be kept as a log.
  // Bytes of a frame that failed to verify are not text (they are errors).
  void keep_text(bool on) noexcept { keep_text_ = on; }
  std::string take_text() {
    std::string out;
    out.swap(text_);
    return out;
  }

 private:
  enum class State { Scan, Header, Body };
  enum class Trailer { Ok, Incomplete, Bad };

  // The unprocessed input is buf_[off_..]; consumed bytes are only dropped
  // from buf_ once per feed() (compact()), so that many frames arriving in one
  // large chunk cost linear, not quadratic, time. Invariants on cur():
  //  Scan:   unscanned bytes; at_line_start_ tells whether cur()[0] starts a
  //          line.
  //  Header: starts with kHeaderMagic (at a line start).
  //  Body:   starts with the header line (header_len_ bytes including its
  //          '\n'), followed by the payload and trailer bytes received so far.
  std::string buf_;
  std::size_t off_ = 0;
  State state_ = State::Scan;
  bool at_line_start_ = true;

  std::string kind_;
  std::size_t length_ = 0;
  std::uint32_t header_crc_ = 0;
  std::size_t header_len_ = 0;

  std::deque<Frame> ready_;
  std::vector<std::string> errors_;
  bool keep_text_ = false;
  std::string text_;

  static bool is_eol(char c) noexcept { return c == '\n' || c == '\r'; }

  std::string_view cur() const noexcept { return std::string_view(buf_).substr(off_); }

  // Drops the first n unprocessed bytes, keeping track of line starts.
  void consume(std::size_t n) {
    if (n == 0) return;
    at_line_start_ = is_eol(buf_[off_ + n - 1]);
    off_ += n;
  }

  void compact() {
    buf_.erase(0, off_);
    off_ = 0;
  }

  std::string frame_prefix() const { return "frame '" + kind_ + "': "; }

  // Gives up on the frame whose header is at the start of the buffer and
  // continues scanning right after its header line, so that a frame starting
  // inside the bytes we took for this frame's payload is still found.
  void resync_after_header() {
    consume(header_len_);
    state_ = State::Scan;
  }

  void process(bool eof) {
    for (;;) {
      bool progressed = false;
      switch (state_) {
        case State::Scan: progressed = scan(eof); break;
        case State::Header: progressed = parse_header(eof); break;
        case State::Body: progressed = parse_body(eof); break;
      }
      if (!progressed) return;
    }
  }

  // Looks for kHeaderMagic at a line start. Returns true if one was found
  // (state becomes Header).
  bool scan(bool eof) {
    const std::string_view view = cur();
    std::size_t from = 0;
    for (;;) {
      const std::size_t pos = view.find(kHeaderMagic, from);
      if (pos == std::string_view::npos) break;
      const bool line_start = pos == 0 ? at_line_start_ : is_eol(view[pos - 1]);
      if (line_start) {
        if (keep_text_) text_.append(view.substr(0, pos));
        consume(pos);
        state_ = State::Header;
        return true;
      }
      from = pos + 1;
    }
    // No header: keep only a tail that could be the beginning of a marker.
    std::size_t keep = 0;
    if (!eof) {
      const std::size_t max_keep = std::min(view.size(), kHeaderMagic.size() - 1);
      for (std::size_t k = max_keep; k > 0; --k) {
        if (kHeaderMagic.substr(0, k) == view.substr(view.size() - k)) {
          keep = k;
          break;
        }
      }
    }
    if (keep_text_) text_.append(view.substr(0, view.size() - keep));
    consume(view.size() - keep);
    return false;
  }

  bool parse_header(bool eof) {
    const std::string_view view = cur();
    const std::size_t nl = view.substr(0, kMaxHeaderLineLength + 1).find('\n');
    if (nl == std::string_view::npos) {
      if (view.size() > kMaxHeaderLineLength) {
        errors_.push_back("malformed frame header: '" +
                          detail::quote(view.substr(0, kMaxHeaderLineLength), 80) +
                          "' (no end of line within " + std::to_string(kMaxHeaderLineLength) +
                          " bytes)");
        consume(kHeaderMagic.size());
        state_ = State::Scan;
        return true;
      }
      if (eof) {
        errors_.push_back("truncated frame header: '" + detail::quote(view) +
                          "' (stream ended before end of line)");
        consume(view.size());
        state_ = State::Scan;
      }
      return false;
    }
    std::string_view line = view.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!parse_header_fields(line.substr(kHeaderMagic.size()))) {
      errors_.push_back("malformed frame header: '" + detail::quote(line) + "'");
      consume(nl + 1);
      state_ = State::Scan;
      return true;
    }
    header_len_ = nl + 1;
    if (length_ > kMaxPayloadLength) {
      errors_.push_back(frame_prefix() + "declared payload length " + std::to_string(length_) +
                        " exceeds the limit of " + std::to_string(kMaxPayloadLength) + " bytes");
      resync_after_header();
      return true;
    }
    state_ = State::Body;
    return true;
  }

  // Parses "<kind> <length> <crc>" (the part after the magic).
  bool parse_header_fields(std::string_view rest) {
    const std::size_t sp1 = rest.find(' ');
    if (sp1 == std::string_view::npos) return false;
    const std::string_view kind = rest.substr(0, sp1);
    if (!is_valid_kind(kind)) return false;
    rest.remove_prefix(sp1 + 1);
    const std::size_t sp2 = rest.find(' ');
    if (sp2 == std::string_view::npos) return false;
    const std::string_view len = rest.substr(0, sp2);
    const std::string_view crc = rest.substr(sp2 + 1);
    // More than 12 digits can never be a valid length; also avoids overflow.
    if (len.empty() || len.size() > 12) return false;
    std::size_t length = 0;
    for (const char c : len) {
      if (c < '0' || c > '9') return false;
      length = length * 10 + static_cast<std::size_t>(c - '0');
    }
    if (crc.size() != 8) return false;
    std::uint32_t crc_value = 0;
    for (const char c : crc) {
      const int v = detail::hex_value(c);
      if (v < 0) return false;
      crc_value = (crc_value << 4) | static_cast<std::uint32_t>(v);
    }
    kind_.assign(kind);
    length_ = length;
    header_crc_ = crc_value;
    return true;
  }

  // Checks the trailer starting at buf_[pos]. On Ok, *end is one past it.
  Trailer check_trailer(std::size_t pos, bool eof, std::size_t* end) const {
    const std::string_view v = cur();
    auto need = [&](std::size_t p) { return p < v.size(); };
    // Newline after the payload: "\n" or "\r\n".
    if (!need(pos)) return Trailer::Incomplete;
    if (v[pos] == '\r') {
      ++pos;
      if (!need(pos)) return Trailer::Incomplete;
    }
    if (v[pos] != '\n') return Trailer::Bad;
    ++pos;
    for (const char m : kTrailerMagic) {
      if (!need(pos)) return Trailer::Incomplete;
      if (v[pos] != m) return Trailer::Bad;
      ++pos;
    }
    for (int i = 0; i < 8; ++i) {
      if (!need(pos)) return Trailer::Incomplete;
      if (detail::hex_value(v[pos]) < 0) return Trailer::Bad;
      ++pos;
    }
    // Final newline; optional at end of stream.
    if (!need(pos)) {
      if (eof) {
        *end = pos;
        return Trailer::Ok;
      }
      return Trailer::Incomplete;
    }
    if (v[pos] == '\r') {
      ++pos;
      if (!need(pos)) {
        if (eof) {
          *end = pos;
          return Trailer::Ok;
        }
        return Trailer::Incomplete;
      }
    }
    if (v[pos] != '\n') return Trailer::Bad;
    *end = pos + 1;
    return Trailer::Ok;
  }

  std::uint32_t trailer_crc(std::size_t trailer_end) const {
    // The 8 hex digits sit right before the optional "\r\n" at trailer_end.
    const std::string_view v = cur();
    std::size_t p = trailer_end;
    if (p > 0 && v[p - 1] == '\n') --p;
    if (p > 0 && v[p - 1] == '\r') --p;
    std::uint32_t crc = 0;
    for (std::size_t i = p - 8; i < p; ++i) {
      crc = (crc << 4) | static_cast<std::uint32_t>(detail::hex_value(v[i]));
    }
    return crc;
  }

  bool parse_body(bool eof) {
    const std::string_view view = cur();
    const std::size_t payload_end = header_len_ + length_;
    if (view.size() <= payload_end) {
      if (eof) {
        const std::size_t got = view.size() - header_len_;
        if (got == length_) {
          errors_.push_back(frame_prefix() + "truncated: stream ended before the @@END trailer");
        } else {
          errors_.push_back(frame_prefix() + "truncated: expected " + std::to_string(length_) +
                            " payload bytes, stream ended after " + std::to_string(got));
        }
        // Frames may still hide in what we took for this frame's payload.
        resync_after_header();
        return true;
      }
      return false;
    }
    std::size_t end = 0;
    switch (check_trailer(payload_end, eof, &end)) {
      case Trailer::Incomplete:
        if (eof) {
          errors_.push_back(frame_prefix() + "truncated: stream ended inside the @@END trailer");
          resync_after_header();
          return true;
        }
        return false;
      case Trailer::Bad: {
        // Start at the header's own '\n' so that a header directly following
        // it (zero payload bytes received) is recognised too.
        const std::string_view region = view.substr(header_len_ - 1, length_ + 1);
        const std::size_t next_header = region.find("\n@@VMLAT1 ");
        if (next_header != std::string_view::npos) {
          errors_.push_back(frame_prefix() + "truncated: expected " + std::to_string(length_) +
                            " payload bytes, a new frame header follows after " +
                            std::to_string(next_header));
        } else {
          errors_.push_back(frame_prefix() + "missing @@END trailer (found '" +
                            detail::quote(view.substr(payload_end, 24)) +
                            "' after " + std::to_string(length_) + " payload bytes)");
        }
        resync_after_header();
        return true;
      }
      case Trailer::Ok: break;
    }
    const std::string_view payload = view.substr(header_len_, length_);
    const std::uint32_t actual = crc32(payload);
    const std::uint32_t in_trailer = trailer_crc(end);
    if (in_trailer != header_crc_) {
      errors_.push_back(frame_prefix() + "@@END trailer checksum " + detail::hex8(in_trailer) +
                        " does not match header checksum " + detail::hex8(header_crc_));
      resync_after_header();
      return true;
    }
    if (actual != header_crc_) {
      errors_.push_back(frame_prefix() + "checksum mismatch (header " + detail::hex8(header_crc_) +
                        ", payload " + detail::hex8(actual) + ")");
      // Header, length and trailer agree: the frame's extent is trustworthy,
      // only its content is corrupt. Skip all of it.
      consume(end);
      state_ = State::Scan;
      return true;
    }
    ready_.push_back(Frame{std::move(kind_), std::string(payload)});
    kind_.clear();
    consume(end);
    state_ = State::Scan;
    return true;
  }
};

struct DecodeResult {
  std::vector<Frame> frames;
  std::vector<std::string> errors;
};

// Decodes a complete stream (feed + finish).
inline DecodeResult decode_all(std::string_view text) {
  Decoder d;
  d.feed(text);
  d.finish();
  DecodeResult r;
  while (auto f = d.next()) r.frames.push_back(std::move(*f));
  r.errors = d.take_errors();
  return r;
}

}  // namespace vmlat::frame
