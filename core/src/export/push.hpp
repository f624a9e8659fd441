// Delivering metrics: Pushgateway (prometheus-cpp's Gateway) with bounded
// retries, and node_exporter textfiles written atomically.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "metrics.hpp"
#include "vmlat/json.hpp"

namespace vmlat::exporter {


struct PushOptions {
  std::string url;                                     // http://host:port[/prefix]
  std::chrono::milliseconds budget{30000};             // total time for one push, retries included
  std::chrono::milliseconds attempt_timeout{10000};    // one HTTP attempt
  std::string job = "vmlat";
  int max_attempts = 0;                                // 0: as many as the budget allows
};

// "http://127.0.0.1:9091" -> host part "http://127.0.0.1", port "9091",
// path prefix "". Returns an error message, empty if fine.
struct ParsedUrl {
  std::string host, port, prefix;
};
std::string parse_push_url(const std::string& url, ParsedUrl& out);

// A grouping-key label as the Pushgateway's URL needs it: values outside
// [A-Za-z0-9._~-] (or empty) become name@base64/<base64url>.
std::pair<std::string, std::string> encode_grouping_label(const std::string& name, const std::string& value);

struct PushResult {
  bool ok = false;
  int attempts = 0;
  std::string error;  // last error, if !ok
};

// Pushes `families` (PUT: replaces the group job/<job>/<grouping labels>),
// retrying with exponential backoff (0.5s, 1s, 2s ... 8s) until
// `options.budget` is spent. A 4xx answer is not retried. Gives up early on
// SIGINT/SIGTERM (cancel_requested()). Never throws.
PushResult push_families(const PushOptions& options, const LabelList& grouping,
                         std::vector<prometheus::MetricFamily> families);

// Attempts that did not answer within their timeout are left running on a
// detached thread (prometheus-cpp has no timeout of its own). A process that
// has any must leave with _exit() (see finish_process()).
int abandoned_pushes();
// Flushes stdout/stderr and ends the process with `code`, with _exit() if a
// push thread is still blocked, so that no static destructor races it.
[[noreturn]] void finish_process(int code);

// node_exporter textfile: DIR/vmlat_<plan>_<host>.prom, written atomically
// (temporary name not ending in .prom, then rename). Throws on error.
std::filesystem::path write_textfile(const std::filesystem::path& dir, const json& run, const std::string& text);

// Hooks for `vmlat run` and the replay in `vmlat push`.
class RunExporter {
 public:
  RunExporter(std::optional<PushOptions> push, std::optional<std::filesystem::path> textfile_dir, std::ostream& err)
      : push_(std::move(push)), textfile_dir_(std::move(textfile_dir)), err_(err) {}
  bool enabled() const { return push_.has_value() || textfile_dir_.has_value(); }
  // Push one cell's group (after its result.json is written) and rewrite the
  // textfile with the cells so far.
  void cell_done(const json& run, const json& cell_result);
  // Final state: every cell pushed again with the finished run.json (run end
  // timestamp), the textfile written. Returns the exit code to use.
  int run_done(int code, const json& run, const std::vector<json>& cell_results, const std::string& run_dir);
  bool failed() const { return failed_; }

 private:
  bool push_cell(const json& run, const json& cell_result);
  std::optional<PushOptions> push_;
  std::optional<std::filesystem::path> textfile_dir_;
  std::ostream& err_;
  bool failed_ = false;       // some export did not get through
  bool push_broken_ = false;  // a push used its whole budget: later ones get one short attempt
  std::vector<std::string> unpushed_;
  std::vector<json> cells_so_far_;
};

}  // namespace vmlat::exporter
