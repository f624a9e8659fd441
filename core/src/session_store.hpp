// The on-disk store of a monitoring session (`vmlat monitor`,
// docs/session-format.md): an append-only record log whose every line carries
// its own CRC-32, rotated by size and pruned by total size and age, read back
// by `vmlat report` and the tests. A crash can only tear the last line, which
// the reader reports and skips; nothing written before it is lost.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "app.hpp"
#include "vmlat/json.hpp"

namespace vmlat::session {

inline constexpr std::string_view kSessionSchema = "vmlat-monitor-session/1";
inline constexpr std::string_view kRecordSchema = "vmlat-monitor-record/1";
inline constexpr const char* kCurrentLog = "windows.log";

// All window logs together (current + rotated) stay under max_bytes; the
// oldest rotated file is deleted first, the current file alone may reach
// file_bytes before it is rotated; rotated logs older than max_age are
// deleted (0: no age limit). The monitor's options carry them (app.hpp).
using Bounds = SessionBounds;

// One record as a line: "<crc32 of the JSON, 8 hex digits> <JSON>\n".
std::string encode_record(const json& record);

class RecordLog {
 public:
  RecordLog(std::filesystem::path dir, Bounds bounds);
  ~RecordLog();
  RecordLog(const RecordLog&) = delete;
  RecordLog& operator=(const RecordLog&) = delete;
  // Appends one record in a single write(2) and fdatasync(2)s it; rotates and
  // prunes afterwards when a bound is reached. Throws InfraError.
  void append(const json& record);
  // Closes and reopens the current file (SIGHUP, logrotate's copytruncate or
  // a file moved away).
  void reopen();
  // Rotated files deleted so far (by size or age).
  std::uint64_t pruned() const { return pruned_; }
  std::uint64_t rotations() const { return rotations_; }

 private:
  void open();
  void rotate();
  void prune();
  std::filesystem::path dir_;
  Bounds bounds_;
  int fd_ = -1;
  std::uint64_t size_ = 0, pruned_ = 0, rotations_ = 0, next_rotated_ = 1;
};

// The window logs of a session directory, oldest first (rotated, then current).
std::vector<std::filesystem::path> log_files(const std::filesystem::path& dir);

struct ReadResult {
  std::vector<json> records;
  std::vector<std::string> errors;  // "<file>:<line>: <problem>"
};
// Reads every log of the session, checking each line's CRC.
ReadResult read_records(const std::filesystem::path& dir);

}  // namespace vmlat::session
