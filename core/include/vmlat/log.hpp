// Logging for the run and its cells: timestamped lines in run.log and in the
// cell's cell.log; warnings are also kept in the cell's result.
#pragma once

#include <string>
#include <string_view>

namespace vmlat {

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void info(std::string_view message) = 0;
  virtual void warn(std::string_view message) = 0;
  virtual void error(std::string_view message) = 0;
};

}  // namespace vmlat
