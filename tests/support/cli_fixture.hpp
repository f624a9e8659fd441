// A GoogleTest fixture for end-to-end tests of the vmlat CLI: a scratch
// directory per test (kept when the test fails), plans written into it, the
// built `vmlat` run as a real process, and the run directory it created.
#pragma once

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vmlat/json.hpp"
#include "vmlat/process.hpp"

namespace vmlat::testing {

inline const std::filesystem::path kVmlat = std::filesystem::path(VMLAT_BINARY_DIR) / "vmlat";
inline const std::filesystem::path kSource = VMLAT_SOURCE_DIR;

// One native-probe cell on CPU 0 for 1s; tests append gates and exports.
inline const std::string kOneNativeCellPlan = R"([plan]
duration = "1s"
cpus = [0]
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
)";

// Two host cells on CPU 0 for 1s, one per probe engine, with a gate any
// measurement passes.
inline const std::string kBothEnginesPlan = R"([plan]
duration = "1s"
cpus = [0]
[matrix]
probe = ["cyclictest", "native"]
[backend.host]
[probe.cyclictest]
plugin = "cyclic"
[probe.native]
plugin = "cyclic"
engine = "native"
[[gate]]
bound = "10s"
)";

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Processes vmlat starts; none may survive a run. A test that calls
// CliTest::become_subreaper() gets everything vmlat leaves behind re-parented
// to itself: these count the live (non-zombie) probe, workload and guest
// processes descending from the test process, by name.
inline pid_t parent_of(pid_t pid, char* state) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  pid_t ppid = 0;
  rest >> *state >> ppid;
  return ppid;
}

inline bool is_watched_name(const std::string& comm) {
  return comm == "stress-ng\n" || comm == "cyclictest\n" || comm == "vmlat-probe\n" || comm.rfind("stress-ng-", 0) == 0 ||
         comm.rfind("qemu-system", 0) == 0;
}

// "cyclictest 1234" for each watched descendant still alive.
inline std::vector<std::string> leftover_processes() {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto comm = read_file(e.path() / "comm");
    if (!is_watched_name(comm)) continue;
    char state = '?';
    pid_t pid = std::stoi(name);
    if (parent_of(pid, &state) == 0 || state == 'Z') continue;
    for (pid_t p = pid; p > 1;) {
      char s = '?';
      p = parent_of(p, &s);
      if (p == getpid()) {
        found.push_back(comm.substr(0, comm.size() - 1) + " " + name);
        break;
      }
    }
  }
  return found;
}
inline int count_leftovers() { return static_cast<int>(leftover_processes().size()); }

// The pids of live descendants of this test named `comm` (e.g. "cyclictest").
inline std::vector<pid_t> descendants_named(const std::string& comm) {
  std::vector<pid_t> pids;
  for (const auto& p : leftover_processes()) {
    auto space = p.rfind(' ');
    if (p.substr(0, space) == comm) pids.push_back(std::stoi(p.substr(space + 1)));
  }
  return pids;
}

// Every *.json file below `dir` parses (no torn or half-written file); the
// names of those that do not.
inline std::vector<std::string> unparsable_json_files(const std::filesystem::path& dir) {
  std::vector<std::string> bad;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file() || it->path().extension() != ".json") continue;
    try {
      (void)vmlat::json::parse(read_file(it->path()));
    } catch (const std::exception& e) {
      bad.push_back(it->path().string() + ": " + e.what());
    }
  }
  return bad;
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

  // Orphans of the processes we start become our children (see
  // leftover_processes).
  static void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

  std::filesystem::path write_plan(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  CliResult vmlat(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                  std::chrono::seconds timeout = std::chrono::seconds(900)) {
    auto p = start_vmlat(std::move(args), std::move(env), "");
    return finish(p, "", timeout);
  }

  // vmlat in the background; its output goes to dir_/<tag>stdout and
  // dir_/<tag>stderr. finish() waits for it.
  Process start_vmlat(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                      const std::string& tag = "bg-") {
    args.insert(args.begin(), kVmlat.string());
    return Process::spawn(ProcessSpec{args, env, dir_ / (tag + "stdout"), dir_ / (tag + "stderr"), dir_});
  }
  CliResult finish(Process& p, const std::string& tag = "bg-", std::chrono::seconds timeout = std::chrono::seconds(900)) {
    auto status = p.wait(Clock::now() + timeout, false);
    if (status.timed_out) p.stop(std::chrono::seconds(5));
    return CliResult{status.signal ? 128 + status.signal : status.exit_code, read_file(dir_ / (tag + "stdout")),
                     read_file(dir_ / (tag + "stderr"))};
  }

  // Waits (up to `timeout`, while `p` runs) until some cell's cell.log under
  // dir_/results contains `text`, e.g. the probe's "running ... on guest".
  bool wait_for_cell_log(const std::string& text, Process& p,
                         std::chrono::seconds timeout = std::chrono::seconds(300)) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end && p.running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::error_code ec;
      for (const auto& run : std::filesystem::directory_iterator(dir_ / "results", ec)) {
        if (!run.is_directory() || run.is_symlink()) continue;
        for (const auto& cell : std::filesystem::directory_iterator(run.path() / "cells", ec))
          if (read_file(cell.path() / "cell.log").find(text) != std::string::npos) return true;
      }
    }
    return false;
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
