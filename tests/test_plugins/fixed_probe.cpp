// A FIXED probe for tests whose results must be known in advance (the golden
// result.json/run.json files, series gates on remote hosts, the monitor's
// fault cases): it measures nothing. For each CPU of the cell it waits the
// cell's duration (interruptibly, so that plausibility holds) and returns
// duration/period samples, all at `floor_us` but one at the attempt's max;
// a named series "irq" at half those values when `series` lists it; one
// spike per CPU at the max; the missed periods counted as 0. Never
// installed; kept out of build/plugins (the CLI sees it with --plugin-dir).
//
//   [probe.fixed]
//   plugin = "fixed-probe"
//   max_us = ["200", "50"]    # attempt k's max in us (k counted in state_file; the last repeats)
//   floor_us = 5
//   series = ["irq"]          # extra named series
//   state_file = "/path"      # counts attempts per cell across plugin instances
//   throw_in = "run"          # "", "configure", "run", "stream": throw instead
//   throw_what = "int"        # "int", "string" (a std::string), "std" (std::runtime_error)
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <vmlat/interrupt.hpp>
#include <vmlat/plugin.hpp>

namespace {

using namespace std::chrono_literals;

class FixedProbe final : public vmlat::Probe {
 public:
  void configure(vmlat::Settings& s) override {
    for (const auto& m : s.string_list("max_us", {"200"})) max_us_.push_back(std::stoll(m));
    floor_us_ = s.integer("floor_us", 5, 1, 1000000);
    series_ = s.string_list("series", {});
    for (const auto& name : series_)
      if (name != "irq") s.error("series", "the fixed probe only makes the series \"irq\"");
    state_file_ = s.string("state_file", "");
    throw_in_ = s.choice("throw_in", "", {"", "configure", "run", "stream"});
    throw_what_ = s.choice("throw_what", "int", {"int", "string", "std"});
    maybe_throw("configure");
  }
  std::vector<std::string> series() const override {
    std::vector<std::string> all{vmlat::default_series_name};
    all.insert(all.end(), series_.begin(), series_.end());
    return all;
  }
  vmlat::json facts() const override { return vmlat::json{{"engine", "fixed"}, {"max_us", max_us_}}; }

  vmlat::ProbeResult run(vmlat::Executor&, vmlat::CellContext& ctx) override {
    maybe_throw("run");
    const auto& cell = ctx.cell();
    const long long max_us = max_us_[std::min(attempt(cell.id), max_us_.size() - 1)];
    // The cell's duration passes, as for a real probe.
    const auto until = vmlat::Clock::now() + cell.duration;
    bool interrupted = false;
    while (vmlat::Clock::now() < until) {
      if (vmlat::cancel_requested()) {
        interrupted = true;
        break;
      }
      std::this_thread::sleep_for(std::min<vmlat::Clock::duration>(10ms, until - vmlat::Clock::now()));
    }
    vmlat::ProbeResult r;
    const auto per_cpu = static_cast<std::uint64_t>(cell.duration / cell.period);
    const std::vector<int> cpus = cell.cpus.empty() ? std::vector<int>{0} : cell.cpus;
    for (int cpu : cpus) {
      r.per_cpu[cpu] = histogram(per_cpu, floor_us_, max_us);
      for (const auto& name : series_) r.series[name][cpu] = histogram(per_cpu, floor_us_ / 2 + 1, max_us / 2);
      r.spikes.push_back(vmlat::Spike{cpu, std::chrono::microseconds(max_us), 1000000 + cpu, -1});
    }
    r.facts = vmlat::json{{"attempt_max_us", max_us}};
    r.interrupted = interrupted;
    return r;
  }

  std::unique_ptr<vmlat::ProbeStream> stream(vmlat::Executor&, vmlat::CellContext&, vmlat::nanoseconds) override {
    maybe_throw("stream");
    return nullptr;  // run once per window
  }

 private:
  static vmlat::Histogram histogram(std::uint64_t samples, long long floor_us, long long max_us) {
    vmlat::Histogram h;
    if (samples == 0) return h;
    h.add_bucket(static_cast<std::uint64_t>(floor_us), samples - 1);
    h.add_bucket(static_cast<std::uint64_t>(max_us), 1);
    h.set_exact(std::chrono::microseconds(floor_us), std::chrono::microseconds(max_us),
                std::chrono::microseconds(floor_us * static_cast<long long>(samples - 1) + max_us));
    h.add_missed_periods(0);
    return h;
  }
  // 0 for the first measurement of `cell` (without a state file: always).
  std::size_t attempt(const std::string& cell) const {
    if (state_file_.empty()) return 0;
    std::map<std::string, std::size_t> counts;
    {
      std::ifstream in(state_file_);
      std::string id;
      std::size_t n;
      while (in >> id >> n) counts[id] = n;
    }
    const std::size_t mine = counts[cell]++;
    std::ofstream out(state_file_, std::ios::trunc);
    for (const auto& [id, n] : counts) out << id << " " << n << "\n";
    return mine;
  }
  void maybe_throw(const char* where) const {
    if (throw_in_ != where) return;
    if (throw_what_ == "int") throw 42;
    if (throw_what_ == "string") throw std::string("fixed-probe: a std::string from ") + where;
    throw std::runtime_error(std::string("fixed-probe: a runtime_error from ") + where);
  }

  std::vector<long long> max_us_;
  long long floor_us_ = 5;
  std::vector<std::string> series_;
  std::string state_file_;
  std::string throw_in_, throw_what_;
};

}  // namespace

VMLAT_PLUGIN(FixedProbe, "fixed-probe", "probe", "0.1.0", "FIXED histograms for tests (measures nothing)")
