#include "run/progress.hpp"

#include <cstdio>
#include <ostream>

#include "vmlat/units.hpp"

namespace vmlat {

namespace {
std::string clock_text(std::chrono::seconds s) {
  char buf[32];
  long long v = s.count();
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", v / 3600, (v / 60) % 60, v % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", v / 60, v % 60);
  return buf;
}
}  // namespace

Progress::Progress(bool enabled, std::ostream& err, std::size_t total, std::chrono::nanoseconds per_cell_estimate,
                   bool events)
    : enabled_(enabled || events), events_(events), err_(err), total_(total), estimate_(per_cell_estimate),
      start_(Clock::now()) {
  if (enabled_ && !events_) ticker_ = std::thread([this] { tick(); });
}

Progress::~Progress() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void Progress::host(const std::string& name, const std::string& state) {
  std::lock_guard lock(mutex_);
  hosts_[name].state = state;
  if (enabled_ && !events_) draw();
}

void Progress::cell(std::size_t index, const Cell& c, const std::string& phase) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (events_) {
    err_ << "vmlat-event " << dump_json(json{{"cell", c.spec.id}, {"index", index}, {"phase", phase}}) << "\n" << std::flush;
    return;
  }
  auto& h = hosts_[c.spec.host_name];
  h.index = index;
  h.axes.clear();
  for (const auto& [k, v] : c.spec.axes) h.axes += (h.axes.empty() ? "" : " ") + k + "=" + v;
  h.state = phase;
  h.in_cell = true;
  draw();
}

void Progress::begin_cell(const std::string& host) {
  std::lock_guard lock(mutex_);
  hosts_[host].cell_start = Clock::now();
}

void Progress::end_cell(std::size_t index, const Cell& c, const CellOutcome& o) {
  std::lock_guard lock(mutex_);
  ++done_;
  auto& h = hosts_[c.spec.host_name];
  h.in_cell = false;
  h.state = "idle";
  if (!enabled_ || events_) return;
  std::string verdict = status_name(o.status);
  for (const auto& g : o.gates)
    if (g.verdict == Verdict::fail) verdict = "gate failed";
  err_ << "\r\033[K[" << index << "/" << total_ << "] " << c.spec.id;
  if (hosts_.size() > 1) err_ << " on " << c.spec.host_name;
  err_ << ": " << verdict;
  if (o.merged && !o.merged->empty()) err_ << " (max " << format_latency(o.merged->max()) << ")";
  if (!o.error.empty()) err_ << ": " << o.error;
  err_ << "\n" << std::flush;
  draw();
}

void Progress::draw() {
  auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start_);
  if (hosts_.size() <= 1) {
    if (hosts_.empty() || !hosts_.begin()->second.in_cell) return;
    const auto& h = hosts_.begin()->second;
    // Remaining: the average of finished cells, or the plan's estimate before any.
    double per_cell = done_ > 0 ? std::chrono::duration<double>(Clock::now() - start_).count() / static_cast<double>(done_)
                                : std::chrono::duration<double>(estimate_).count();
    double in_cell = std::chrono::duration<double>(Clock::now() - h.cell_start).count();
    double remaining = std::max(0.0, per_cell * static_cast<double>(total_ - done_) - in_cell);
    err_ << "\r\033[K[" << h.index << "/" << total_ << "] " << h.axes << "  " << h.state << "  elapsed "
         << clock_text(elapsed) << ", ~" << clock_text(std::chrono::seconds(static_cast<long long>(remaining)))
         << " left" << std::flush;
    return;
  }
  std::string line = "[" + std::to_string(done_) + "/" + std::to_string(total_) + " done]";
  for (const auto& [name, h] : hosts_)
    line += " " + name + ": " + (h.in_cell ? "cell " + std::to_string(h.index) + " " + h.state : h.state) + " |";
  line.pop_back();
  err_ << "\r\033[K" << line << " elapsed " << clock_text(elapsed) << std::flush;
}

void Progress::tick() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::seconds(1));
    if (!stopping_) draw();
  }
}

}  // namespace vmlat
