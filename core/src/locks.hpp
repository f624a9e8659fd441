// Locks that keep two vmlat processes from stepping on each other
// (docs/ARCHITECTURE.md, "Locks"):
//
// - the run-directory lock: held by the vmlat that runs or resumes a run,
//   for as long as it does; a second `--resume` of a run in progress is
//   refused, and a run.json that says "running" while nobody holds the lock
//   belongs to a vmlat that died (SIGKILL, a CI timeout): "abandoned";
// - the host lock: one measurement per host at a time, across processes
//   (two runs measuring the same CPUs at the same RT priority skew each
//   other's numbers). Under /run/vmlat unless VMLAT_LOCK_DIR or --lock-dir
//   say otherwise.
//
// Both are open-file-description locks (fcntl F_OFD_SETLK) on files opened
// O_CLOEXEC: the kernel drops them when the holder dies, no child process
// inherits them, and F_OFD_GETLK asks whether one is held without taking it.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "vmlat/json.hpp"

namespace vmlat {

class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  // Takes the exclusive lock without waiting; nullopt if another process
  // holds it. Writes `holder` (who we are, for the other side's messages)
  // into the file. Throws std::system_error if the file cannot be opened.
  static std::optional<FileLock> try_lock(const std::filesystem::path& path, const json& holder);
  // What the current holder wrote (an empty object if unreadable).
  static json holder(const std::filesystem::path& path);
  // True if some process holds the lock right now.
  static bool held(const std::filesystem::path& path);

  bool owns() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The run directory's lock file.
std::filesystem::path run_lock_path(const std::filesystem::path& run_dir);

// "running" in run.json but no live vmlat holds the run's lock: "abandoned".
// Otherwise the stored status.
std::string effective_run_status(const std::filesystem::path& run_dir, const json& run);

// The host-wide measurement lock file: $VMLAT_LOCK_DIR, or `lock_dir` when
// given, or /run/vmlat; "measure.lock" inside it.
std::filesystem::path host_lock_path(const std::optional<std::filesystem::path>& lock_dir);

// "run 20261201T...-quickstart (plan quickstart, pid 1234, since ...)".
std::string describe_holder(const json& holder);

// Takes the host lock, waiting for its holder (said once on `err`) unless
// `no_wait`. On failure `*why` says why and the result is empty: `busy`
// (no_wait and held), `interrupted` (SIGINT/SIGTERM while waiting) or
// `failed` (the lock file cannot be made).
enum class HostLockFailure { none, busy, interrupted, failed };
std::optional<FileLock> acquire_host_lock(const std::optional<std::filesystem::path>& lock_dir, bool no_wait,
                                          const json& holder, std::ostream& err, HostLockFailure* failure);

}  // namespace vmlat
