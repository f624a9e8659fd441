// Live progress of a run on a terminal, redrawn on every phase change and
// once a second in between: "[i/N] axes  phase  elapsed, ~remaining" with one
// host; with several, each host's state ("lab1: cell 2/4 measure | lab2:
// provisioning"). Finished cells get a line of their own. In `events` mode
// (a remote `vmlat run-cell`), phases go to `err` as "vmlat-event {json}"
// lines for the controller instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <iosfwd>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "cell/outcome.hpp"
#include "plan.hpp"
#include "vmlat/interrupt.hpp"

namespace vmlat {

class Progress {
 public:
  Progress(bool enabled, std::ostream& err, std::size_t total, std::chrono::nanoseconds per_cell_estimate,
           bool events = false);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // A host's state outside of cells: "connecting", "provisioning", "idle", "failed: ...".
  void host(const std::string& name, const std::string& state);
  void cell(std::size_t index, const Cell& c, const std::string& phase);
  void begin_cell(const std::string& host);
  void end_cell(std::size_t index, const Cell& c, const CellOutcome& o);

 private:
  struct HostView {
    std::string state = "idle";
    std::size_t index = 0;
    std::string axes;
    bool in_cell = false;
    Clock::time_point cell_start = Clock::now();
  };
  void draw();  // with mutex_ held
  void tick();

  bool enabled_;
  bool events_;
  std::ostream& err_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::chrono::nanoseconds estimate_;
  Clock::time_point start_;
  std::map<std::string, HostView> hosts_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread ticker_;
};

}  // namespace vmlat
