// `vmlat monitor`: one cell of a plan measured continuously, window after
// window, with no blind spot between windows (a streaming probe), kept on
// disk as a session directory (docs/session-format.md) and served as live
// Prometheus metrics (prometheus-cpp Exposer).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "../plan.hpp"
#include "../session_store.hpp"

namespace vmlat {
class PluginRegistry;
}

namespace vmlat::exporter {

struct MonitorOptions {
  std::string listen = "127.0.0.1:9464";             // host:port of /metrics
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::string cell_id;                               // empty: the plan's first cell
  std::optional<std::chrono::nanoseconds> stop_after;  // --for: stop by itself (tests)
  std::optional<std::filesystem::path> lock_dir;     // the host lock (as `vmlat run`)
  bool no_wait = false;
  // The session directory is created in here (default: the plan's results dir).
  std::optional<std::filesystem::path> results_root;
  session::Bounds bounds;
  // Back-off before bringing a failed backend or probe up again: doubles from
  // backoff_min up to backoff_max, back to backoff_min after a window.
  std::chrono::milliseconds backoff_min = std::chrono::seconds(1);
  std::chrono::milliseconds backoff_max = std::chrono::seconds(60);
};

// "256MiB", "16M", "4096" (bytes), "1GiB": a size in bytes, or nullopt with `why`.
std::optional<std::uint64_t> parse_size_bytes(const std::string& text, std::string* why);

// Prepares and boots the cell's backend, starts its workload, then streams
// the probe's windows into the session directory and /metrics until
// SIGINT/SIGTERM (or stop_after). A backend or probe that fails after the
// first window is torn down and brought up again after a back-off; the time
// not measured is recorded as a gap. Returns 0 after a clean stop, 2 for a
// bad cell id, address or setting, 3 if the cell could not be measured at all.
int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err);

}  // namespace vmlat::exporter
