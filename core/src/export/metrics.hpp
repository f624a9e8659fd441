// Prometheus metrics built from vmlat's result documents (run.json and
// cells/<id>/result.json), so that a stored run exports exactly like a live
// one. The metric set is documented in docs/metrics.md.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../run_store.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"

namespace vmlat::exporter {

using LabelList = std::vector<std::pair<std::string, std::string>>;

// Upper bounds of the exported latency histogram, in microseconds (+Inf is
// implicit): 1, 2, 5 steps from 1us to 100ms.
const std::vector<std::uint64_t>& bucket_bounds_us();

// The histogram document of `h` reduced to what MetricSet::histogram reads:
// every bucket moved down to the largest bound of bucket_bounds_us() not
// above it (or 0), so the exported cumulative counts are exactly those of `h`
// while the document has at most bounds + 1 buckets whatever `h` holds
// (the monitor publishes a cumulative histogram every window in constant
// memory). Extremes, sum, overflows and missed periods are kept.
json histogram_doc_for_metrics(const Histogram& h);

// A valid Prometheus label name for a free-form name: [a-zA-Z_][a-zA-Z0-9_]*,
// other characters become '_', a leading digit gets a '_' prefix, reserved
// names (__*) and names vmlat uses itself get an "axis_" prefix.
std::string sanitize_label_name(const std::string& name);

// Parses ISO 8601 UTC ("2026-11-25T13:32:28.231Z") to seconds since the epoch.
// Returns a negative value if the text is not such a timestamp.
double iso8601_to_epoch(const std::string& text);

// Metric families in insertion order; one family per name.
class MetricSet {
 public:
  void gauge(const std::string& name, const std::string& help, const LabelList& labels, double value);
  void counter(const std::string& name, const std::string& help, const LabelList& labels, double value);
  // A vmlat histogram document (1us buckets) as a Prometheus histogram in
  // seconds with bucket_bounds_us(): exact cumulative counts (bucket k =
  // [k, k+1) us counts in every bound > k), overflows only in +Inf,
  // _sum = sum_ns, _count = samples.
  void histogram(const std::string& name, const std::string& help, const LabelList& labels, const json& histogram);

  std::vector<prometheus::MetricFamily>& families() { return families_; }
  std::vector<prometheus::MetricFamily> take() { return std::move(families_); }

 private:
  prometheus::MetricFamily& family(const std::string& name, const std::string& help, prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, std::size_t> index_;
};

// The identifying labels of a cell: plan, host, cell, then every axis of the
// cell (backend, workload, probe, period, host_kernel, guest_kernel, ...,
// names sanitized), "period" added from period_ns when it is not an axis.
LabelList cell_labels(const json& run, const json& cell_result);

// The grouping key of a cell on a Pushgateway (besides job="vmlat").
LabelList grouping_key(const json& run, const json& cell_result);

// Every metric of one cell. `run` may be a run.json still being written
// (finished = null): then vmlat_run_end_timestamp_seconds is left out.
void add_cell_metrics(MetricSet& set, const json& run, const json& cell_result);

// A change point of `vmlat history` (report/history.hpp), as the metrics see it.
struct ChangePointMetric {
  std::string host, cell, stat, run_id;
  double run_start_s = -1;             // the change run's start (Unix seconds); < 0 unknown
  double before_ns = 0, after_ns = 0;  // the levels on either side
  std::vector<std::string> facts;      // names of the facts that changed (values never: they are unbounded)
};
// The change points of a plan's history (docs/metrics.md, "Change points"):
// vmlat_history_runs and vmlat_history_change_points{plan}, and per change
// point vmlat_change_point_timestamp_seconds and vmlat_change_point_ratio
// {plan, host, cell, stat, run_id, facts}. `facts` holds at most a few names
// and a bounded length, so no label value grows with the data.
void add_change_point_metrics(MetricSet& set, const std::string& plan, std::size_t runs,
                              const std::vector<ChangePointMetric>& changes);

// Text exposition format 0.0.4: the same bytes as prometheus-cpp's
// TextSerializer (what the Gateway pushes and the Exposer serves; a unit test
// compares them), written several times faster for big runs.
std::string to_text(const std::vector<prometheus::MetricFamily>& families);
// prometheus-cpp's TextSerializer itself (tests, benchmark).
std::string to_text_reference(const std::vector<prometheus::MetricFamily>& families);

// A stored run (run_store.hpp: shared with reports and compare).
using vmlat::StoredRun;
using vmlat::load_run_dir;

}  // namespace vmlat::exporter
