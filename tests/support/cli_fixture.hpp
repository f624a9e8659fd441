// A GoogleTest fixture for end-to-end tests of the vmlat CLI: a scratch
// directory per test (kept when the test fails), plans written into it, the
// built `vmlat` run as a real process, and the run directory it created.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "vmlat/process.hpp"

namespace vmlat::testing {

inline const std::filesystem::path kVmlat = std::filesystem::path(VMLAT_BINARY_DIR) / "vmlat";
inline const std::filesystem::path kSource = VMLAT_SOURCE_DIR;

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CliResult {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vmlat-cli-" + std::to_string(getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::filesystem::path write_plan(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  CliResult vmlat(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                  std::chrono::seconds timeout = std::chrono::seconds(900)) {
    args.insert(args.begin(), kVmlat.string());
    auto out = dir_ / "stdout", err = dir_ / "stderr";
    auto p = Process::spawn(ProcessSpec{args, env, out, err, dir_});
    auto status = p.wait(Clock::now() + timeout, false);
    if (status.timed_out) p.stop(std::chrono::seconds(5));
    return CliResult{status.signal ? 128 + status.signal : status.exit_code, read_file(out), read_file(err)};
  }

  // The one run directory under dir_/results (not the "latest" link).
  std::filesystem::path only_run_dir() {
    std::vector<std::filesystem::path> runs;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "results"))
      if (e.is_directory() && !e.is_symlink()) runs.push_back(e.path());
    EXPECT_EQ(runs.size(), 1u);
    return runs.empty() ? std::filesystem::path() : runs.front();
  }

  std::filesystem::path dir_;
};

}  // namespace vmlat::testing
