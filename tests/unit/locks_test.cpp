// The run-directory and host locks (locks.hpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "locks.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vmlat-locks-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Whether another process (a child) could take the lock now.
bool child_can_lock(const fs::path& path) {
  pid_t pid = fork();
  if (pid == 0) _exit(FileLock::try_lock(path, json::object()) ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
}  // namespace

TEST(Locks, OneHolderAtATimeAndTheHolderIsNamed) {
  auto dir = scratch("one");
  auto path = dir / "measure.lock";
  EXPECT_FALSE(FileLock::held(path));  // no file yet
  auto lock = FileLock::try_lock(path, json{{"what", "run"}, {"run_id", "r1"}, {"plan", "p"}, {"pid", 42}});
  ASSERT_TRUE(lock);
  EXPECT_TRUE(FileLock::held(path));
  EXPECT_FALSE(child_can_lock(path));
  EXPECT_EQ(describe_holder(FileLock::holder(path)), "run r1 (plan p, pid 42)");
  lock.reset();
  EXPECT_FALSE(FileLock::held(path));
  EXPECT_TRUE(child_can_lock(path));
  fs::remove_all(dir);
}

TEST(Locks, AskingWhetherALockIsHeldNeverTakesIt) {
  auto dir = scratch("ask");
  auto path = dir / "x.lock";
  auto lock = FileLock::try_lock(path, json::object());
  ASSERT_TRUE(lock);
  lock.reset();
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(FileLock::held(path));
  EXPECT_TRUE(child_can_lock(path));
  fs::remove_all(dir);
}

TEST(Locks, ARunningRunWithoutItsLockIsAbandoned) {
  auto dir = scratch("abandoned");
  json run{{"status", "running"}};
  EXPECT_EQ(effective_run_status(dir, run), "abandoned");
  auto lock = FileLock::try_lock(run_lock_path(dir), json::object());
  EXPECT_EQ(effective_run_status(dir, run), "running");
  lock.reset();
  EXPECT_EQ(effective_run_status(dir, json{{"status", "complete"}}), "complete");
  fs::remove_all(dir);
}

TEST(Locks, TheHostLockWaitsOrGivesUp) {
  auto dir = scratch("host");
  auto held = FileLock::try_lock(host_lock_path(dir), json{{"run_id", "first"}});
  ASSERT_TRUE(held);
  std::ostringstream err;
  HostLockFailure failure;
  // Another process asks (a lock held by this process's other descriptor
  // still excludes: OFD locks belong to the open file, not the process).
  EXPECT_FALSE(acquire_host_lock(dir, /*no_wait=*/true, json::object(), err, &failure));
  EXPECT_EQ(failure, HostLockFailure::busy);
  EXPECT_NE(err.str().find("run first"), std::string::npos) << err.str();
  held.reset();
  EXPECT_TRUE(acquire_host_lock(dir, true, json::object(), err, &failure));
  EXPECT_EQ(failure, HostLockFailure::none);
  fs::remove_all(dir);
}
