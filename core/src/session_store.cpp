#include "session_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "vmlat/errors.hpp"
#include "vmlat/frame.hpp"

namespace vmlat::session {

namespace fs = std::filesystem;

namespace {

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(v));
  return buf;
}

// windows-000001.log -> 1; 0 for any other name.
std::uint64_t rotated_number(const std::string& name) {
  constexpr std::string_view prefix = "windows-", suffix = ".log";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return 0;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoull(digits);
}

std::vector<std::pair<std::uint64_t, fs::path>> rotated(const fs::path& dir) {
  std::vector<std::pair<std::uint64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (auto n = rotated_number(e.path().filename().string()); n > 0) out.emplace_back(n, e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string errno_text(const std::string& what, const fs::path& p) {
  return what + " " + p.string() + ": " + std::strerror(errno);
}

}  // namespace

std::string encode_record(const json& record) {
  const std::string text = record.dump(-1, ' ', false, json::error_handler_t::replace);
  return hex8(frame::crc32(text)) + " " + text + "\n";
}

RecordLog::RecordLog(fs::path dir, Bounds bounds) : dir_(std::move(dir)), bounds_(bounds) {
  auto existing = rotated(dir_);
  if (!existing.empty()) next_rotated_ = existing.back().first + 1;
  open();
}

RecordLog::~RecordLog() {
  if (fd_ >= 0) ::close(fd_);
}

void RecordLog::open() {
  const fs::path p = dir_ / kCurrentLog;
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InfraError(errno_text("cannot open", p));
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void RecordLog::reopen() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  open();
}

void RecordLog::append(const json& record) {
  const std::string line = encode_record(record);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InfraError(errno_text("cannot append to", dir_ / kCurrentLog));
    done += static_cast<std::size_t>(n);
  }
  ::fdatasync(fd_);
  size_ += line.size();
  if (size_ >= bounds_.file_bytes) rotate();
}

void RecordLog::rotate() {
  char name[32];
  std::snprintf(name, sizeof name, "windows-%06llu.log", static_cast<unsigned long long>(next_rotated_++));
  const fs::path from = dir_ / kCurrentLog, to = dir_ / name;
  if (::rename(from.c_str(), to.c_str()) != 0) throw InfraError(errno_text("cannot rotate", from));
  ++rotations_;
  reopen();
  prune();
}

void RecordLog::prune() {
  auto files = rotated(dir_);
  std::uint64_t total = size_;
  std::vector<std::uint64_t> sizes;
  for (const auto& [n, p] : files) {
    std::error_code ec;
    const auto s = fs::file_size(p, ec);
    sizes.push_back(ec ? 0 : s);
    total += sizes.back();
  }
  const auto now = fs::file_time_type::clock::now();
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    const bool too_old = bounds_.max_age.count() > 0 && now - fs::last_write_time(files[i].second, ec) > bounds_.max_age;
    if (total <= bounds_.max_bytes && !too_old) continue;
    if (fs::remove(files[i].second, ec)) {
      total -= sizes[i];
      ++pruned_;
    }
  }
}

std::vector<fs::path> log_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& [n, p] : rotated(dir)) out.push_back(p);
  if (fs::exists(dir / kCurrentLog)) out.push_back(dir / kCurrentLog);
  return out;
}

ReadResult read_records(const fs::path& dir) {
  ReadResult r;
  for (const auto& file : log_files(dir)) {
    std::ifstream in(file, std::ios::binary);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      const std::string where = file.filename().string() + ":" + std::to_string(n) + ": ";
      if (in.eof()) {
        // No newline: the write of this line never finished (a crash).
        r.errors.push_back(where + "truncated last line (" + std::to_string(line.size()) + " bytes), skipped");
        break;
      }
      if (line.size() < 10 || line[8] != ' ') {
        r.errors.push_back(where + "not a record line");
        continue;
      }
      const std::string text = line.substr(9);
      if (hex8(frame::crc32(text)) != line.substr(0, 8)) {
        r.errors.push_back(where + "checksum mismatch, skipped");
        continue;
      }
      try {
        r.records.push_back(json::parse(text));
      } catch (const std::exception& e) {
        r.errors.push_back(where + "invalid JSON: " + e.what());
      }
    }
  }
  return r;
}

}  // namespace vmlat::session
