// build-guest's resolution stamps as the kvm backend reads them: the stamp
// format against GNU stat itself, and every way a stamped resolution stops
// holding (a changed, removed or new input, another request, a replaced
// image, a broken stamps file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <vmlat/process.hpp>

#include "image_stamps.hpp"

namespace {

using namespace vmlat;
using namespace vmlat::kvm;
namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// GNU stat's own rendering of a stamp, the format build-guest writes.
std::string gnu_stat(const fs::path& p) {
  const fs::path out = fs::temp_directory_path() / ("vmlat-stamp-" + std::to_string(::getpid()));
  auto proc = Process::spawn(ProcessSpec{{"stat", "-L", "-c", "%i %s %.9Y %.9Z", "--", p.string()}, {}, out, "/dev/null", {}});
  auto status = proc.wait(Clock::now() + std::chrono::seconds(20), false);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  fs::remove(out);
  return status.success() ? line : "absent";
}

class KvmImageStamps : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vmlat-stamps-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "img");
    write(dir_ / "input-a", "a");
    write(dir_ / "input-b", "bb");
    write(dir_ / "agent", "agent");
    write(dir_ / "build-guest", "#!/bin/sh\n");
    write(dir_ / "img/vmlinuz", "k");
    write(dir_ / "img/initramfs.img", "i");
    write(dir_ / "img/guest.json", json{{"hash", "0123456789abcdef"},
                                        {"vmlinuz", (dir_ / "img/vmlinuz").string()},
                                        {"initramfs", (dir_ / "img/initramfs.img").string()}}
                                       .dump());
    request_ = ImageRequest{(dir_ / "build-guest").string(), "nrt", (dir_ / "agent").string(), ""};
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A stamps file as build-guest writes it, stamps taken by GNU stat.
  void stamp(const std::vector<fs::path>& files, json request_overrides = json::object()) {
    json req{{"script", fs::canonical(dir_ / "build-guest").string()},
             {"flavour", "nrt"},
             {"kernel_package", ""},
             {"agent", fs::canonical(dir_ / "agent").string()},
             {"probe", ""},
             {"modules", json::array()},
             {"tools", {{"sh", fs::canonical(find_in_path("sh")).string()},
                        {"stat", fs::canonical(find_in_path("stat")).string()}}}};
    req.update(request_overrides);
    json list = json::array();
    for (const auto& f : files) list.push_back({{"path", f.string()}, {"stat", gnu_stat(f)}});
    write(stamps(), json{{"format", 1},
                         {"request", req},
                         {"guest_json", (dir_ / "img/guest.json").string()},
                         {"hash", "0123456789abcdef"},
                         {"checked_at", "2026-12-01T00:00:00Z"},
                         {"files", list}}
                        .dump());
  }
  fs::path stamps() const { return dir_ / ".stamps-nrt.json"; }
  std::vector<fs::path> inputs() const { return {dir_ / "input-a", dir_ / "input-b", dir_ / "not-there"}; }

  fs::path dir_;
  ImageRequest request_;
};

TEST_F(KvmImageStamps, StampFormatIsGnuStats) {
  for (const auto& p : {dir_ / "input-a", dir_, fs::path("/etc/passwd"), dir_ / "not-there"})
    EXPECT_EQ(stat_stamp(p), gnu_stat(p)) << p;
  EXPECT_EQ(stat_stamp(dir_ / "not-there"), "absent");
}

TEST_F(KvmImageStamps, UnchangedInputsGiveTheStampedImage) {
  stamp(inputs());
  StampCheck c = check_stamps(stamps(), request_);
  ASSERT_TRUE(c.guest) << c.reason;
  EXPECT_EQ(c.guest->value("hash", ""), "0123456789abcdef");
  EXPECT_NE(c.reason.find("2026-12-01T00:00:00Z"), std::string::npos) << c.reason;
}

TEST_F(KvmImageStamps, ChangedInputDoesNotHold) {
  stamp(inputs());
  // Same size, new content and mtime: the stamp (mtime, ctime) notices.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write(dir_ / "input-b", "BB");
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("input-b changed"), std::string::npos) << c.reason;
}

TEST_F(KvmImageStamps, ReplacedInputDoesNotHold) {
  stamp(inputs());
  // Another file renamed into place (what apt and dpkg do): a new inode.
  write(dir_ / "input-a.new", "a");
  fs::rename(dir_ / "input-a.new", dir_ / "input-a");
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("input-a changed"), std::string::npos) << c.reason;
}

TEST_F(KvmImageStamps, InputThatAppearsOrGoesDoesNotHold) {
  stamp(inputs());
  write(dir_ / "not-there", "now it is");
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("not-there changed since build-guest checked it (absent -> "), std::string::npos) << c.reason;
  stamp(inputs());
  fs::remove(dir_ / "input-a");
  c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("-> absent"), std::string::npos) << c.reason;
}

TEST_F(KvmImageStamps, AnotherRequestDoesNotHold) {
  stamp(inputs(), {{"agent", "/elsewhere/vmlat-guest-agent"}});
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("agent \"/elsewhere/vmlat-guest-agent\""), std::string::npos) << c.reason;
  for (const auto& [key, value] : std::vector<std::pair<const char*, json>>{{"flavour", "rt"}, {"probe", "/x/vmlat-probe"},
                                   {"tools", {{"sh", "/opt/other/sh"}}}, {"tools", json::object()},
                                   {"tools", {{"no-such-program-anywhere", "/usr/bin/x"}}},
                                   {"kernel_package", "linux-image-6.1.0-1-amd64"},
                                   {"script", "/other/build-guest"}, {"modules", json::array({"e1000"})}}) {
    stamp(inputs(), {{key, value}});
    EXPECT_FALSE(check_stamps(stamps(), request_).guest) << key << " " << value.dump();
  }
}

TEST_F(KvmImageStamps, ReplacedOrMissingImageDoesNotHold) {
  stamp(inputs());
  write(dir_ / "img/guest.json", json{{"hash", "ffffffffffffffff"},
                                      {"vmlinuz", (dir_ / "img/vmlinuz").string()},
                                      {"initramfs", (dir_ / "img/initramfs.img").string()}}
                                     .dump());
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("not the stamped image"), std::string::npos) << c.reason;
  SetUp();
  stamp(inputs());
  fs::remove(dir_ / "img/initramfs.img");
  c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("no initramfs"), std::string::npos) << c.reason;
}

TEST_F(KvmImageStamps, BrokenStampsFileIsANoWithItsReason) {
  StampCheck c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("no " + stamps().string()), std::string::npos) << c.reason;
  write(stamps(), "{\"format\": 1, \"request\": ");
  c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("does not parse"), std::string::npos) << c.reason;
  write(stamps(), "{\"format\": 1, \"request\": {\"flavour\": 3}}");
  c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_FALSE(c.reason.empty());
  stamp({});
  c = check_stamps(stamps(), request_);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find("no stamped files"), std::string::npos) << c.reason;
}

}  // namespace
