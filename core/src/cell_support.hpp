// Pieces every way of running a cell shares (the runner, the monitor):
// timestamped file logs, the CellContext given to plugins, and creating a
// configured plugin object for an instance of the plan.
#pragma once

#include <filesystem>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plan.hpp"
#include "vmlat/context.hpp"
#include "vmlat/log.hpp"

namespace vmlat {

class Executor;
class Plugin;
class PluginRegistry;

// "2026-11-25T13:03:01.123Z"
std::string iso_now();
// "20261206T012345Z": the current UTC time as run and session ids use it.
std::string compact_utc();
// Removes `dir` and the directories below it that hold no file (the scratch
// tree of cells that left nothing for diagnosis). True if `dir` went.
bool remove_empty_dirs(const std::filesystem::path& dir);

// Appends timestamped lines to `path`; also to `parent` (the run log), and
// warnings/errors to `echo` (a terminal) when given. Keeps the warnings for
// result.json.
class FileLogger final : public Logger {
 public:
  FileLogger(const std::filesystem::path& path, FileLogger* parent, std::string prefix, std::ostream* echo = nullptr);
  void info(std::string_view m) override;
  void warn(std::string_view m) override;
  void error(std::string_view m) override;
  std::vector<std::string> warnings;

 private:
  void write(const char* level, std::string_view m, bool echo);
  void raw(const std::string& line);
  std::ofstream out_;
  FileLogger* parent_;
  std::string prefix_;
  std::ostream* echo_;
  std::mutex mutex_;
};

class CellContextImpl final : public CellContext {
 public:
  CellContextImpl(const CellSpec& spec, std::filesystem::path cell_dir, std::filesystem::path work_dir, Logger& log,
                  Executor& host);
  const CellSpec& cell() const override { return spec_; }
  const std::filesystem::path& cell_dir() const override { return cell_dir_; }
  const std::filesystem::path& work_dir() const override { return work_dir_; }
  void save_artifact(std::string_view name, std::string_view content) override;
  Logger& log() override { return log_; }
  Executor& host() override { return host_; }
  std::vector<int> target_threads() const override { return target_threads_; }
  std::vector<std::string> artifacts;  // names saved so far
  std::vector<int> target_threads_;    // set after boot from Backend::target_threads()

 private:
  const CellSpec& spec_;
  std::filesystem::path cell_dir_, work_dir_;
  Logger& log_;
  Executor& host_;
};

// The exception being handled, in words, whatever its type: what() of a
// std::exception, else "an exception of type 'int' (not a std::exception)".
// Call only inside a catch block. Plugins may throw anything; the core
// catches everything at the plugin boundary and turns it into an
// infrastructure error of the cell.
std::string describe_current_exception();

}  // namespace vmlat
