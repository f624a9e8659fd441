// The real build-guest writes stamps that the backend's check accepts, and
// a changed input makes the check fail until build-guest has looked again;
// an image with qemu-ga (--qemu-ga) has stamps of its own.
// Uses a private cache (the kernel .debs of the default cache are shared by
// a symlink when present), so one image build (~5 s) on a cold cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <vmlat/text.hpp>
#include <vmlat/process.hpp>

#include "image_stamps.hpp"

namespace {

using namespace vmlat;
using namespace vmlat::kvm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kSource = VMLAT_SOURCE_DIR;
const fs::path kAgent = fs::path(VMLAT_BINARY_DIR) / "libexec/vmlat-guest-agent";


TEST(KvmBuildGuestStamps, RealBuildGuestWritesStampsTheBackendAccepts) {
  if (::geteuid() != 0) GTEST_SKIP() << "build-guest needs root (mknod, its cache)";
  ASSERT_TRUE(fs::exists(kAgent)) << kAgent;
  const fs::path dir = fs::temp_directory_path() / ("vmlat-bg-stamps-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "cache");
  if (fs::is_directory("/var/cache/vmlat/guests/debs"))
    fs::create_directory_symlink("/var/cache/vmlat/guests/debs", dir / "cache/debs");
  // A copy of the script, so that the test can touch it.
  const fs::path script = dir / "build-guest";
  fs::copy_file(kSource / "plugins/common/guest/images/build-guest", script);
  fs::copy_file(kSource / "plugins/common/guest/images/image-lib.sh", dir / "image-lib.sh");
  auto run_build_guest = [&] {
    auto p = Process::spawn(ProcessSpec{{script.string(), "--flavour", "nrt", "--cache", (dir / "cache").string(),
                                         "--agent", kAgent.string(), "--print-json"},
                                        {}, dir / "guest.json", dir / "build-guest.err", dir});
    auto status = p.wait(Clock::now() + 900s, false);
    ASSERT_TRUE(status.success()) << slurp(dir / "build-guest.err");
  };
  const ImageRequest request{script.string(), "nrt", kAgent.string(), ""};
  const fs::path stamps = dir / "cache/.stamps-nrt.json";

  run_build_guest();
  const json printed = json::parse(slurp(dir / "guest.json"));
  StampCheck c = check_stamps(stamps, request);
  ASSERT_TRUE(c.guest) << c.reason << "\n" << slurp(stamps);
  EXPECT_EQ(*c.guest, printed);
  // What build-guest hashed is stamped, and so is the apt state.
  const std::string text = slurp(stamps);
  for (const std::string& path : {script.string(), (dir / "image-lib.sh").string(), fs::canonical(kAgent).string(),
                                  std::string("/var/lib/apt/lists"),
                                 std::string("/var/lib/dpkg/status")})
    EXPECT_NE(text.find("\"" + path + "\""), std::string::npos) << path;

  // Another request: not this resolution.
  EXPECT_FALSE(check_stamps(stamps, ImageRequest{script.string(), "nrt", kAgent.string(), "/bin/true"}).guest);

  // A touched input: no longer holds, until build-guest has checked again.
  std::this_thread::sleep_for(20ms);
  fs::last_write_time(script, fs::file_time_type::clock::now());
  c = check_stamps(stamps, request);
  EXPECT_FALSE(c.guest);
  EXPECT_NE(c.reason.find(script.string() + " changed"), std::string::npos) << c.reason;
  run_build_guest();
  c = check_stamps(stamps, request);
  ASSERT_TRUE(c.guest) << c.reason;
  EXPECT_EQ(c.guest->value("hash", ""), printed.value("hash", ""));  // same content, same image

  // --no-stamps leaves the file alone.
  const auto before = fs::last_write_time(stamps);
  std::this_thread::sleep_for(20ms);
  {
    auto p = Process::spawn(ProcessSpec{{script.string(), "--flavour", "nrt", "--cache", (dir / "cache").string(),
                                         "--agent", kAgent.string(), "--no-stamps"},
                                        {}, "/dev/null", dir / "build-guest.err", dir});
    ASSERT_TRUE(p.wait(Clock::now() + 900s, false).success()) << slurp(dir / "build-guest.err");
  }
  EXPECT_EQ(fs::last_write_time(stamps), before);

  // With qemu-ga (the libvirt backend's guest-exec): another image, stamped
  // in a file of its own; the plain image's stamps still hold.
  if (!find_in_path("qemu-ga").empty()) {
    auto p = Process::spawn(ProcessSpec{{script.string(), "--flavour", "nrt", "--cache", (dir / "cache").string(),
                                         "--agent", kAgent.string(), "--print-json", "--qemu-ga"},
                                        {}, dir / "guest-qga.json", dir / "build-guest.err", dir});
    ASSERT_TRUE(p.wait(Clock::now() + 900s, false).success()) << slurp(dir / "build-guest.err");
    const json qga = json::parse(slurp(dir / "guest-qga.json"));
    EXPECT_NE(qga.value("hash", ""), printed.value("hash", ""));
    EXPECT_EQ(qga["contents"]["qemu_ga"]["included"], true) << qga["contents"].dump();
    EXPECT_EQ(printed["contents"]["qemu_ga"]["included"], false);
    const fs::path qga_stamps = stamps_file(dir / "cache", "nrt", true);
    EXPECT_EQ(qga_stamps.filename(), ".stamps-nrt-qga.json");
    ImageRequest with_qga = request;
    with_qga.qemu_ga = true;
    c = check_stamps(qga_stamps, with_qga);
    ASSERT_TRUE(c.guest) << c.reason;
    EXPECT_EQ(c.guest->value("hash", ""), qga.value("hash", ""));
    EXPECT_TRUE(check_stamps(stamps, request).guest) << "the plain image's stamps were left alone";
    c = check_stamps(stamps, with_qga);
    EXPECT_FALSE(c.guest);
    EXPECT_NE(c.reason.find("without qemu-ga"), std::string::npos) << c.reason;
    // qemu-ga itself is in the initramfs, where /init starts it.
    auto list = Process::spawn(ProcessSpec{{"sh", "-c", "zstd -dc \"$1\" 2>/dev/null | cpio -t --quiet || gzip -dc \"$1\" | cpio -t --quiet",
                                            "sh", qga["initramfs"].get<std::string>()},
                                           {}, dir / "initramfs.list", dir / "list.err", dir});
    ASSERT_TRUE(list.wait(Clock::now() + 120s, false).success()) << slurp(dir / "list.err");
    const std::string files = slurp(dir / "initramfs.list");
    EXPECT_NE(files.find("usr/sbin/qemu-ga\n"), std::string::npos);
    EXPECT_NE(files.find("libglib-2.0.so.0"), std::string::npos) << "the libraries ldd lists";
  }
  fs::remove_all(dir);
}

}  // namespace
