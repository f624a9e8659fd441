// What a plugin sees of the cell it is working on.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmlat {

class Executor;
class Logger;

// One point of the plan's matrix.
struct CellSpec {
  std::string id;                                          // stable, e.g. "host-stress-native-1ms"
  std::vector<std::pair<std::string, std::string>> axes;   // in plan order
  std::string plan_name;
  std::string host_name;                                   // the host the cell runs on
  std::chrono::nanoseconds period{0};                      // the probe's period
  std::chrono::nanoseconds duration{0};                    // how long the probe measures
  std::vector<int> cpus;                                   // CPUs to measure; empty = all of the target

  std::optional<std::string> axis(std::string_view name) const {
    for (const auto& [key, value] : axes)
      if (key == name) return value;
    return std::nullopt;
  }
};

class CellContext {
 public:
  virtual ~CellContext() = default;
  virtual const CellSpec& cell() const = 0;
  // The cell's results directory on the machine running vmlat. Absolute,
  // like work_dir(): a path derived from it means the same thing in any
  // child process, whatever that child's working directory.
  virtual const std::filesystem::path& cell_dir() const = 0;
  // A scratch directory for this cell (sockets, unpacked files); removed
  // after the cell unless the cell failed. Absolute.
  virtual const std::filesystem::path& work_dir() const = 0;
  // Writes `content` atomically to cell_dir()/name and lists it in the result.
  virtual void save_artifact(std::string_view name, std::string_view content) = 0;
  virtual Logger& log() = 0;
  // The machine the cell runs on: this machine, or a lab host when the cell
  // runs there through `vmlat run-cell` (then that vmlat is local to it).
  virtual Executor& host() = 0;
  // Backend::target_threads() once the backend has booted: host thread ids
  // of the vCPUs that run the probe's target; empty on bare metal.
  virtual std::vector<int> target_threads() const { return {}; }
};

}  // namespace vmlat
