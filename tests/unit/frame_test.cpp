// Unit tests for vmlat/frame.hpp (vmlat frame v1).
#include <vmlat/frame.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using vmlat::frame::decode_all;
using vmlat::frame::Decoder;
using vmlat::frame::encode;
using vmlat::frame::Frame;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

std::vector<Frame> drain(Decoder& d) {
  std::vector<Frame> out;
  while (auto f = d.next()) out.push_back(std::move(*f));
  return out;
}

std::string binary_payload() {
  std::string p;
  for (int i = 0; i < 256; ++i) p += static_cast<char>(i);
  p += std::string("\0\0tail", 6);
  return p;
}

TEST(FrameCrc32, KnownVectors) {
  EXPECT_EQ(vmlat::frame::crc32("123456789"), 0xcbf43926U);
  EXPECT_EQ(vmlat::frame::crc32(""), 0x00000000U);
  EXPECT_EQ(vmlat::frame::crc32("a"), 0xe8b7be43U);
  EXPECT_EQ(vmlat::frame::crc32("The quick brown fox jumps over the lazy dog"), 0x414fa339U);
}

TEST(FrameCrc32, Incremental) {
  const std::uint32_t first = vmlat::frame::crc32("12345");
  EXPECT_EQ(vmlat::frame::crc32("6789", first), 0xcbf43926U);
}

TEST(FrameEncode, ExactWireFormat) {
  EXPECT_EQ(encode("demo", "123456789"), "@@VMLAT1 demo 9 cbf43926\n123456789\n@@END cbf43926\n");
  EXPECT_EQ(encode("x", ""), "@@VMLAT1 x 0 00000000\n\n@@END 00000000\n");
}

TEST(FrameEncode, RejectsBadKinds) {
  EXPECT_THROW(encode("", "p"), std::invalid_argument);
  EXPECT_THROW(encode("Upper", "p"), std::invalid_argument);
  EXPECT_THROW(encode("has space", "p"), std::invalid_argument);
  EXPECT_THROW(encode("new\nline", "p"), std::invalid_argument);
  EXPECT_THROW(encode("under_score", "p"), std::invalid_argument);
  EXPECT_THROW(encode(std::string(33, 'a'), "p"), std::invalid_argument);
  EXPECT_NO_THROW(encode(std::string(32, 'a'), "p"));
  EXPECT_NO_THROW(encode("native-probe-result-0", "p"));
}

TEST(FrameDecode, RoundTrip) {
  const std::vector<Frame> frames = {
      {"native-probe-result", R"({"schema":"vmlat-native-probe/1","threads":[]})"},
      {"empty", ""},
      {"binary", binary_payload()},
      {"multi-line", "line 1\nline 2\n\n"},
      // Payloads may contain things that look like framing.
      {"tricky", "@@VMLAT1 inner 3 00000000\nabc\n@@END 00000000\n"},
      {"trailing-cr", "x\r"},
  };
  std::string stream;
  for (const auto& f : frames) stream += encode(f.kind, f.payload);
  const auto result = decode_all(stream);
  EXPECT_TRUE(result.errors.empty()) << join(result.errors);
  EXPECT_EQ(result.frames, frames);
}

TEST(FrameDecode, GarbageBeforeAndBetweenFrames) {
  const std::string a = encode("first", "alpha");
  const std::string b = encode("second", "beta");
  const std::string stream =
      "[    0.000000] Linux version 6.1.0 (gcc) #1 SMP\n"
      "\x1b[0m\x01\xff random bytes, no newline then ";
  // Garbage that does not end in a newline must not hide the frame marker:
  // the header has to be at a line start, so add one.
  const std::string full = stream + "\n" + a + "login: @@VMLAT1 not-at-line-start 1 00000000\n" +
                           "[    1.2] more noise\n" + b + "trailing garbage";
  const auto result = decode_all(full);
  EXPECT_TRUE(result.errors.empty()) << join(result.errors);
  ASSERT_EQ(result.frames.size(), 2U);
  EXPECT_EQ(result.frames[0], (Frame{"first", "alpha"}));
  EXPECT_EQ(result.frames[1], (Frame{"second", "beta"}));
}

TEST(FrameDecode, KeptTextIsExactlyWhatLiesBetweenFrames) {
  const std::string text1 = "[    0.1] boot\nvmlat-init: up\n";
  const std::string text2 = "a line with @@VMLAT1 inside\n@@VMLAT";  // ends like a marker
  const std::string stream = text1 + encode("hello", "{}") + text2 + "\n" + encode("exit", "{\"id\":1}") + "tail";
  // Byte by byte: the kept text must not depend on the chunking.
  Decoder d;
  d.keep_text(true);
  std::string text;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    text += d.take_text();
  }
  d.finish();
  text += d.take_text();
  EXPECT_EQ(text, text1 + text2 + "\n" + "tail");
  EXPECT_EQ(drain(d).size(), 2u);
  EXPECT_TRUE(d.take_errors().empty());
  // Off by default: nothing is kept.
  Decoder quiet;
  quiet.feed(stream);
  EXPECT_EQ(quiet.take_text(), "");
  EXPECT_EQ(drain(quiet).size(), 2u);
}

TEST(FrameDecode, HeaderMustStartALine) {
  const auto result = decode_all("noise " + encode("k", "payload"));
  EXPECT_TRUE(result.frames.empty());
  EXPECT_TRUE(result.errors.empty()) << join(result.errors);
}

TEST(FrameDecode, ByteByByteFeeding) {
  const std::vector<Frame> frames = {{"a", "one"}, {"b", binary_payload()}, {"c", ""}};
  std::string stream = "boot noise\n";
  for (const auto& f : frames) stream += encode(f.kind, f.payload) + "noise between\n";

  Decoder d;
  std::vector<Frame> got;
  std::size_t max_buffered = 0;
  for (const char c : stream) {
    d.feed(std::string_view(&c, 1));
    while (auto f = d.next()) got.push_back(std::move(*f));
    max_buffered = std::max(max_buffered, d.buffered());
  }
  EXPECT_EQ(got, frames);  // every frame is available as soon as its trailer is in
  EXPECT_LE(d.buffered(), 8U);  // only trailing noise was left, and it is dropped
  // Never more than the largest frame (header + payload + trailer) is held.
  EXPECT_LE(max_buffered, encode("b", binary_payload()).size());
  d.finish();
  EXPECT_FALSE(d.next().has_value());
  EXPECT_TRUE(d.take_errors().empty());
}

TEST(FrameDecode, RandomChunking) {
  std::vector<Frame> frames;
  std::string stream;
  for (int i = 0; i < 50; ++i) {
    Frame f{"f" + std::to_string(i), std::string(static_cast<std::size_t>(i * 7), 'a' + i % 26)};
    stream += "garbage line " + std::to_string(i) + "\n" + encode(f.kind, f.payload);
    frames.push_back(std::move(f));
  }
  std::mt19937 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    Decoder d;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      const std::size_t n = std::min<std::size_t>(stream.size() - pos, 1 + rng() % 97);
      d.feed(std::string_view(stream).substr(pos, n));
      pos += n;
    }
    d.finish();
    EXPECT_EQ(drain(d), frames);
    EXPECT_TRUE(d.take_errors().empty());
  }
}

TEST(FrameDecode, GarbageIsNotAccumulated) {
  Decoder d;
  const std::string noise(4096, 'x');
  for (int i = 0; i < 256; ++i) {
    d.feed(noise);
    d.feed("\n@@VMLA");  // a partial marker may be kept, nothing more
    EXPECT_LE(d.buffered(), 8U);
  }
  d.feed("T1 k 2 ");
  EXPECT_GT(d.buffered(), 8U);  // now inside a header
}

TEST(FrameDecode, ManyFramesInOneChunk) {
  // 100k frames (~5 MB) in a single feed: must be linear, not quadratic.
  std::string stream;
  constexpr int kFrames = 100000;
  for (int i = 0; i < kFrames; ++i) stream += encode("n", std::to_string(i)) + "x\n";
  const auto result = decode_all(stream);
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.frames.size(), static_cast<std::size_t>(kFrames));
  EXPECT_EQ(result.frames.back().payload, std::to_string(kFrames - 1));
}

TEST(FrameDecode, LargePayloadInChunks) {
  std::string payload(3 << 20, '\0');
  std::mt19937 rng(7);
  for (auto& c : payload) c = static_cast<char>(rng());
  const std::string frame = encode("big", payload);
  Decoder d;
  for (std::size_t pos = 0; pos < frame.size(); pos += 4096) {
    d.feed(std::string_view(frame).substr(pos, 4096));
    EXPECT_LE(d.buffered(), frame.size());
  }
  auto f = d.next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, payload);
  EXPECT_EQ(d.buffered(), 0U);
  EXPECT_TRUE(d.take_errors().empty());
}

TEST(FrameDecode, TruncatedPayload) {
  const std::string payload(120, 'p');
  const std::string frame = encode("x", payload);
  const std::size_t header_len = frame.find('\n') + 1;
  const auto result = decode_all(frame.substr(0, header_len + 37));
  EXPECT_TRUE(result.frames.empty());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_EQ(result.errors[0], "frame 'x': truncated: expected 120 payload bytes, stream ended after 37");
}

TEST(FrameDecode, TruncatedTrailer) {
  const std::string frame = encode("x", "hello");
  for (std::size_t cut = frame.size() - 16; cut < frame.size() - 1; ++cut) {
    const auto result = decode_all(frame.substr(0, cut));
    EXPECT_TRUE(result.frames.empty()) << "cut at " << cut;
    ASSERT_EQ(result.errors.size(), 1U) << "cut at " << cut;
    EXPECT_TRUE(contains(result.errors[0], "frame 'x': truncated")) << result.errors[0];
  }
  // Only the final newline missing at end of stream: still a complete frame.
  const auto lenient = decode_all(frame.substr(0, frame.size() - 1));
  EXPECT_TRUE(lenient.errors.empty()) << join(lenient.errors);
  ASSERT_EQ(lenient.frames.size(), 1U);
}

TEST(FrameDecode, TruncatedHeader) {
  const auto result = decode_all("noise\n@@VMLAT1 native-probe-res");
  EXPECT_TRUE(result.frames.empty());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "truncated frame header")) << result.errors[0];
}

TEST(FrameDecode, TruncatedFrameFollowedByAnother) {
  // A guest died mid-frame, rebooted, and sent a complete frame.
  const std::string first = encode("first", std::string(500, 'a'));
  const std::string second = encode("second", "ok");
  const std::string stream = first.substr(0, 100) + "\n[ 0.0] reboot\n" + second;

  // Streaming: the decoder must not wait for the end of the stream.
  Decoder d;
  d.feed(stream);
  d.feed(std::string(600, 'z'));  // more console output arrives later
  auto frames = drain(d);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0], (Frame{"second", "ok"}));
  const auto errors = d.take_errors();
  ASSERT_EQ(errors.size(), 1U);
  EXPECT_TRUE(contains(errors[0], "frame 'first': truncated")) << errors[0];

  // At end of stream (the second frame lies inside the first's declared
  // payload length).
  const auto result = decode_all(stream);
  ASSERT_EQ(result.frames.size(), 1U);
  EXPECT_EQ(result.frames[0], (Frame{"second", "ok"}));
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "frame 'first': truncated")) << result.errors[0];
}

TEST(FrameDecode, BadChecksum) {
  std::string frame = encode("x", "payload-bytes");
  const std::size_t header_len = frame.find('\n') + 1;
  frame[header_len + 3] ^= 0x01;  // corrupt one payload byte
  const std::string expected_payload_crc =
      vmlat::frame::detail::hex8(vmlat::frame::crc32(frame.substr(header_len, 13)));
  const std::string good = encode("y", "fine");
  const auto result = decode_all(frame + good);
  ASSERT_EQ(result.frames.size(), 1U);
  EXPECT_EQ(result.frames[0], (Frame{"y", "fine"}));
  ASSERT_EQ(result.errors.size(), 1U);
  const std::string header_crc = vmlat::frame::detail::hex8(vmlat::frame::crc32("payload-bytes"));
  EXPECT_EQ(result.errors[0], "frame 'x': checksum mismatch (header " + header_crc + ", payload " +
                                  expected_payload_crc + ")");
}

TEST(FrameDecode, BadChecksumInHeaderAndTrailer) {
  // Same (wrong) CRC in both header and trailer: structure fine, content not.
  const std::string frame = "@@VMLAT1 x 3 deadbeef\nabc\n@@END deadbeef\n";
  const auto result = decode_all(frame);
  EXPECT_TRUE(result.frames.empty());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "checksum mismatch (header deadbeef, payload"))
      << result.errors[0];
}

TEST(FrameDecode, BadTrailer) {
  std::string frame = encode("x", "abc");
  const std::size_t t = frame.find("@@END");
  frame[t + 3] = 'M';  // "@@EMD"
  const auto result = decode_all(frame + encode("y", "next"));
  ASSERT_EQ(result.frames.size(), 1U);
  EXPECT_EQ(result.frames[0].kind, "y");
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "frame 'x': missing @@END trailer")) << result.errors[0];
}

TEST(FrameDecode, PayloadLongerThanDeclared) {
  // Declared 3 bytes, but 4 were sent: the trailer is not where it should be.
  const std::string crc = vmlat::frame::detail::hex8(vmlat::frame::crc32("abc"));
  const auto result = decode_all("@@VMLAT1 x 3 " + crc + "\nabcd\n@@END " + crc + "\n");
  EXPECT_TRUE(result.frames.empty());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "frame 'x': missing @@END trailer")) << result.errors[0];
}

TEST(FrameDecode, TrailerChecksumDiffersFromHeader) {
  const std::string crc = vmlat::frame::detail::hex8(vmlat::frame::crc32("abc"));
  const auto result = decode_all("@@VMLAT1 x 3 " + crc + "\nabc\n@@END 00000000\n");
  EXPECT_TRUE(result.frames.empty());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_TRUE(contains(result.errors[0], "@@END trailer checksum 00000000 does not match"))
      << result.errors[0];
}

TEST(FrameDecode, NonNumericLength) {
  const std::string crc = vmlat::frame::detail::hex8(vmlat::frame::crc32("abc"));
  const std::string bad = "@@VMLAT1 x 3a " + crc + "\nabc\n@@END " + crc + "\n";
  const auto result = decode_all(bad + encode("y", "after"));
  ASSERT_EQ(result.frames.size(), 1U);
  EXPECT_EQ(result.frames[0], (Frame{"y", "after"}));
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_EQ(result.errors[0], "malformed frame header: '@@VMLAT1 x 3a " + crc + "'");
}

TEST(FrameDecode, OtherMalformedHeaders) {
  const std::vector<std::string> bad = {
      "@@VMLAT1 x -3 cbf43926\n",          // sign
      "@@VMLAT1 x 3 cbf4392\n",            // short crc
      "@@VMLAT1 x 3 cbf4392g\n",           // non-hex crc
      "@@VMLAT1 X 3 cbf43926\n",           // bad kind
      "@@VMLAT1 x  3 cbf43926\n",          // double space
      "@@VMLAT1 x 3 cbf43926 extra\n",     // trailing field
      "@@VMLAT1 x 3\n",                    // missing crc
      "@@VMLAT1 \n",                       // empty
      "@@VMLAT1 " + std::string(300, 'a') + "\n",  // over-long line
  };
  for (const auto& header : bad) {
    const auto result = decode_all(header + "abc\n" + encode("ok", "1"));
    ASSERT_EQ(result.frames.size(), 1U) << header;
    EXPECT_EQ(result.frames[0].kind, "ok");
    ASSERT_EQ(result.errors.size(), 1U) << header;
    EXPECT_TRUE(contains(result.errors[0], "malformed frame header")) << result.errors[0];
  }
}

TEST(FrameDecode, AbsurdLength) {
  Decoder d;
  d.feed("@@VMLAT1 huge 67108865 00000000\n");
  d.feed(encode("ok", "small"));
  auto frames = drain(d);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].kind, "ok");
  const auto errors = d.take_errors();
  ASSERT_EQ(errors.size(), 1U);
  EXPECT_TRUE(contains(errors[0], "frame 'huge': declared payload length 67108865 exceeds"))
      << errors[0];
  // An enormous digit string must not overflow into a small value.
  const auto r = decode_all("@@VMLAT1 huge 99999999999999999999999 00000000\nabc\n");
  EXPECT_TRUE(r.frames.empty());
  ASSERT_EQ(r.errors.size(), 1U);
}

TEST(FrameDecode, CrLfAroundHeaderAndTrailer) {
  std::string frame = encode("crlf", "payload\nwith newline");
  // A tty with onlcr would turn the framing newlines into CRLF; emulate for
  // the header and trailer (payload must be byte exact).
  const std::size_t h = frame.find('\n');
  frame.insert(h, "\r");
  const std::size_t t = frame.rfind("\n@@END");
  frame.insert(t, "\r");
  frame.insert(frame.size() - 1, "\r");
  const auto result = decode_all("boot\r\n" + frame);
  EXPECT_TRUE(result.errors.empty()) << join(result.errors);
  ASSERT_EQ(result.frames.size(), 1U);
  EXPECT_EQ(result.frames[0].payload, "payload\nwith newline");
}

TEST(FrameDecode, TakeErrorsClears) {
  Decoder d;
  d.feed("@@VMLAT1 bad header\n");
  EXPECT_EQ(d.take_errors().size(), 1U);
  EXPECT_TRUE(d.take_errors().empty());
}

TEST(FrameDecode, ReusableAfterFinish) {
  Decoder d;
  d.feed("noise\n@@VMLAT1 x 10 ");
  d.finish();
  EXPECT_EQ(d.take_errors().size(), 1U);
  EXPECT_EQ(d.buffered(), 0U);
  d.feed(encode("again", "works"));
  d.finish();
  auto frames = drain(d);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0], (Frame{"again", "works"}));
  EXPECT_TRUE(d.take_errors().empty());
}

TEST(FrameDecode, CorruptionNeverYieldsAFrame) {
  // Flip every single byte of a frame in turn: the result is either an
  // error or (if the flip hit something the decoder ignores) the original.
  // The one exception is the kind token: the v1 CRC covers the payload only,
  // so a flip that keeps the kind a valid token cannot be detected.
  const Frame original{"k", "{\"a\":1}"};
  const std::string frame = encode(original.kind, original.payload);
  for (std::size_t i = 0; i < frame.size(); ++i) {
    for (const unsigned char mask : {0x01, 0x20, 0x80}) {
      std::string bad = frame;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      const auto result = decode_all(bad);
      const bool in_kind = i >= 9 && i < 9 + original.kind.size();
      for (const auto& f : result.frames) {
        if (in_kind) {
          EXPECT_EQ(f.payload, original.payload) << "byte " << i << " mask " << int(mask);
        } else {
          EXPECT_EQ(f, original) << "byte " << i << " mask " << int(mask);
        }
      }
    }
  }
}

TEST(FrameDecode, RandomMutationsYieldOnlyGenuinePayloads) {
  std::vector<std::string> payloads;
  std::string clean = "boot\n";
  for (int i = 0; i < 8; ++i) {
    payloads.push_back("{\"i\":" + std::to_string(i) + ",\"pad\":\"" + std::string(static_cast<std::size_t>(i * 13), 'q') + "\"}");
    clean += encode("k" + std::to_string(i), payloads.back()) + "noise " + std::to_string(i) + "\n";
  }
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = clean;
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = static_cast<char>(rng()); break;                       // overwrite
        case 1: s.erase(at, 1 + rng() % 20); break;                             // delete
        case 2: s.insert(at, std::string(1 + rng() % 5, static_cast<char>(rng()))); break;  // insert
        default: s.insert(at, "\n@@VMLAT1 z 5 0000000"); break;              // bogus header
      }
    }
    Decoder d;
    std::size_t pos = 0;
    while (pos < s.size()) {
      const std::size_t n = std::min<std::size_t>(s.size() - pos, 1 + rng() % 64);
      d.feed(std::string_view(s).substr(pos, n));
      pos += n;
    }
    d.finish();
    while (auto f = d.next()) {
      EXPECT_NE(std::find(payloads.begin(), payloads.end(), f->payload), payloads.end())
          << "iteration " << iter << " returned a corrupt payload";
    }
    d.take_errors();
  }
}

}  // namespace
