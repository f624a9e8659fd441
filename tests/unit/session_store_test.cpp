// The record log of a monitor session (session_store.hpp): CRC per line,
// torn and corrupted lines found, rotation and pruning within the bounds,
// reopen after the file was moved away.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "session_store.hpp"

namespace fs = std::filesystem;
using namespace vmlat;

namespace {

class SessionStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vmlat-session-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SessionStore, RecordsReadBackAndBrokenLinesAreReported) {
  {
    session::RecordLog log(dir_, session::Bounds{});
    for (int i = 0; i < 3; ++i) log.append(json{{"type", "window"}, {"seq", i}, {"text", "a\nb \"c\""}});
  }
  auto r = session::read_records(dir_);
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.records[2]["seq"], 2);
  EXPECT_EQ(r.records[0]["text"], "a\nb \"c\"");
  // A flipped byte in line 2, and a last line cut short (a crash mid-write).
  std::string text;
  {
    std::ifstream in(dir_ / session::kCurrentLog);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto second = text.find('\n') + 1;
  text[second + 20] = text[second + 20] == '1' ? '2' : '1';
  text += session::encode_record(json{{"seq", 3}}).substr(0, 12);
  {
    std::ofstream out(dir_ / session::kCurrentLog, std::ios::trunc);
    out << text;
  }
  r = session::read_records(dir_);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1]["seq"], 2);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_NE(r.errors[0].find("windows.log:2: checksum"), std::string::npos) << r.errors[0];
  EXPECT_NE(r.errors[1].find("windows.log:4: truncated"), std::string::npos) << r.errors[1];
}

TEST_F(SessionStore, RotatesAndPrunesWithinTheBound) {
  session::Bounds b;
  b.file_bytes = 1000;
  b.max_bytes = 3000;
  session::RecordLog log(dir_, b);
  const std::string pad(80, 'x');
  for (int i = 0; i < 200; ++i) log.append(json{{"seq", i}, {"pad", pad}});
  EXPECT_GT(log.rotations(), 10u);
  EXPECT_GT(log.pruned(), 5u);
  std::uint64_t total = 0;
  for (const auto& f : session::log_files(dir_)) total += fs::file_size(f);
  EXPECT_LE(total, b.max_bytes + b.file_bytes);
  auto r = session::read_records(dir_);
  EXPECT_TRUE(r.errors.empty());
  ASSERT_FALSE(r.records.empty());
  // The newest are kept, in order, without a hole.
  EXPECT_EQ(r.records.back()["seq"], 199);
  for (std::size_t i = 1; i < r.records.size(); ++i)
    EXPECT_EQ(r.records[i]["seq"].get<int>(), r.records[i - 1]["seq"].get<int>() + 1);
}

TEST_F(SessionStore, ReopenAfterTheFileWasMovedAway) {
  session::RecordLog log(dir_, session::Bounds{});
  log.append(json{{"seq", 0}});
  fs::rename(dir_ / session::kCurrentLog, dir_ / "moved");
  log.append(json{{"seq", 1}});  // still into the moved file
  log.reopen();
  log.append(json{{"seq", 2}});
  auto r = session::read_records(dir_);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0]["seq"], 2);
  EXPECT_EQ(fs::file_size(dir_ / "moved"), 2 * session::encode_record(json{{"seq", 0}}).size());
}

}  // namespace
