#include "cell_support.hpp"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

#include "loader.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/plugin.hpp"

namespace vmlat {

std::string compact_utc() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

bool remove_empty_dirs(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec) || std::filesystem::is_symlink(dir, ec)) return false;
  bool empty = true;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec) && remove_empty_dirs(entry.path())) continue;
    empty = false;
  }
  return empty && std::filesystem::remove(dir, ec);
}

std::string iso_now() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::ostringstream ss;
  ss << buf << '.' << std::setw(3) << std::setfill('0') << ms << 'Z';
  return ss.str();
}

FileLogger::FileLogger(const std::filesystem::path& path, FileLogger* parent, std::string prefix, std::ostream* echo)
    : out_(path, std::ios::app), parent_(parent), prefix_(std::move(prefix)), echo_(echo) {}

void FileLogger::info(std::string_view m) { write("INFO", m, false); }
void FileLogger::warn(std::string_view m) {
  write("WARN", m, true);
  std::lock_guard lock(mutex_);
  warnings.emplace_back(m);
}
void FileLogger::error(std::string_view m) { write("ERROR", m, true); }

void FileLogger::write(const char* level, std::string_view m, bool echo) {
  std::string line = iso_now() + " " + level + " " + (prefix_.empty() ? "" : "[" + prefix_ + "] ") + std::string(m) + "\n";
  {
    std::lock_guard lock(mutex_);
    out_ << line << std::flush;
    if (echo && echo_) *echo_ << "vmlat: " << (std::string(level) == "WARN" ? "warning: " : "") << m << "\n" << std::flush;
  }
  if (parent_) parent_->raw(line);
}

void FileLogger::raw(const std::string& line) {
  std::lock_guard lock(mutex_);
  out_ << line << std::flush;
}

CellContextImpl::CellContextImpl(const CellSpec& spec, std::filesystem::path cell_dir, std::filesystem::path work_dir,
                                 Logger& log, Executor& host)
    // Absolute (CellContext's contract): a plugin hands these paths to
    // programs that may run in another working directory.
    : spec_(spec),
      cell_dir_(std::filesystem::absolute(cell_dir)),
      work_dir_(std::filesystem::absolute(work_dir)),
      log_(log),
      host_(host) {}

void CellContextImpl::save_artifact(std::string_view name, std::string_view content) {
  std::string n(name);
  if (n.empty() || n.find('/') != std::string::npos || n[0] == '.')
    throw std::invalid_argument("artifact name '" + n + "' must be a plain file name");
  write_file_atomic(cell_dir_ / n, content);
  if (std::find(artifacts.begin(), artifacts.end(), n) == artifacts.end()) artifacts.push_back(n);
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    std::string type = "unknown";
    if (const std::type_info* info = abi::__cxa_current_exception_type()) {
      int status = 0;
      std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(info->name(), nullptr, nullptr, &status), std::free);
      type = status == 0 && name ? name.get() : info->name();
    }
    return "an exception of type '" + type + "' (not a std::exception)";
  }
}


}  // namespace vmlat
