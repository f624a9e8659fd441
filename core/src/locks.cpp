#include "locks.hpp"

#include "vmlat/interrupt.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <thread>
#include <sstream>
#include <system_error>

namespace vmlat {

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::optional<FileLock> FileLock::try_lock(const std::filesystem::path& path, const json& holder) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open the lock file " + path.string());
  struct flock whole {};
  whole.l_type = F_WRLCK;
  whole.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &whole) != 0) {
    int saved = errno;
    ::close(fd);
    if (saved == EAGAIN || saved == EACCES) return std::nullopt;
    throw std::system_error(saved, std::generic_category(), "cannot lock " + path.string());
  }
  // Informational only (who holds it): the lock is the OFD lock, not the text.
  std::string text = dump_json(holder) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    ssize_t ignored = ::pwrite(fd, text.data(), text.size(), 0);
    (void)ignored;
  }
  FileLock lock;
  lock.fd_ = fd;
  return lock;
}

json FileLock::holder(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    auto j = json::parse(ss.str());
    if (j.is_object()) return j;
  } catch (const std::exception&) {
  }
  return json::object();
}

bool FileLock::held(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // no lock file: nobody ever locked it
  // Asks without taking the lock, so asking never makes a locker fail.
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  bool busy = ::fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return busy;
}

std::filesystem::path run_lock_path(const std::filesystem::path& run_dir) { return run_dir / ".lock"; }

std::string effective_run_status(const std::filesystem::path& run_dir, const json& run) {
  std::string status = run.is_object() ? run.value("status", std::string()) : std::string();
  if (status == "running" && !FileLock::held(run_lock_path(run_dir))) return "abandoned";
  return status;
}

std::filesystem::path host_lock_path(const std::optional<std::filesystem::path>& lock_dir) {
  std::filesystem::path dir = "/run/vmlat";
  if (lock_dir) dir = *lock_dir;
  else if (const char* env = std::getenv("VMLAT_LOCK_DIR"); env && *env) dir = env;
  return dir / "measure.lock";
}

std::string describe_holder(const json& h) {
  if (!h.is_object() || h.empty()) return "another vmlat (its lock file names no run)";
  std::string s = h.value("what", std::string("run")) + " " + h.value("run_id", std::string("?"));
  std::string details;
  auto add = [&](const std::string& text) { details += (details.empty() ? "" : ", ") + text; };
  if (h.contains("plan") && h["plan"].is_string()) add("plan " + h["plan"].get<std::string>());
  if (h.contains("pid") && h["pid"].is_number_integer()) add("pid " + std::to_string(h["pid"].get<long long>()));
  if (h.contains("since") && h["since"].is_string()) add("since " + h["since"].get<std::string>());
  if (h.contains("run_dir") && h["run_dir"].is_string()) add("results in " + h["run_dir"].get<std::string>());
  return details.empty() ? s : s + " (" + details + ")";
}

std::optional<FileLock> acquire_host_lock(const std::optional<std::filesystem::path>& lock_dir, bool no_wait,
                                          const json& holder, std::ostream& err, HostLockFailure* failure) {
  const auto path = host_lock_path(lock_dir);
  *failure = HostLockFailure::none;
  bool said = false;
  while (true) {
    try {
      std::filesystem::create_directories(path.parent_path());
      if (auto lock = FileLock::try_lock(path, holder)) return lock;
    } catch (const std::exception& e) {
      err << "vmlat: cannot take the host's measurement lock: " << e.what()
          << " (set VMLAT_LOCK_DIR or --lock-dir to a writable directory)\n";
      *failure = HostLockFailure::failed;
      return std::nullopt;
    }
    const std::string who = describe_holder(FileLock::holder(path));
    if (no_wait) {
      err << "vmlat: this host is busy: " << who << " is measuring here (" << path.string() << "); --no-wait: not waiting\n";
      *failure = HostLockFailure::busy;
      return std::nullopt;
    }
    if (!said) {
      err << "vmlat: waiting for " << who << " to finish measuring on this host (one measurement per host at a time; "
          << "--no-wait exits 3 instead)\n"
          << std::flush;
      said = true;
    }
    for (int i = 0; i < 5 && !cancel_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (cancel_requested()) {
      err << "vmlat: interrupted while waiting for the host\n";
      *failure = HostLockFailure::interrupted;
      return std::nullopt;
    }
  }
}

}  // namespace vmlat
