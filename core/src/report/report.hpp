// `vmlat report RUN_DIR`: one stored run as a self-contained HTML page
// (its data and its one script inline, nothing fetched), as Markdown for a CI job summary or a
// merge-request comment, or as JSON. docs/report.md.
#pragma once

#include <string>
#include <string_view>

#include "compare.hpp"
#include "model.hpp"

namespace vmlat::report {

// What to render: the run, and optionally a baseline run and the comparison
// with it (its table, and the baseline's CCDF overlaid on each cell's).
struct ReportInput {
  const Run* run = nullptr;
  const Run* baseline = nullptr;
  const Comparison* comparison = nullptr;
  // Links to the cells' files (cells/<id>/...) are relative to the run
  // directory: only right for a page written there.
  bool link_artifacts = true;
  // The tail model of every cell (docs/statistics.md): off only to measure
  // its cost (bench/report_bench.cpp).
  bool tails = true;
};

std::string render_html(const ReportInput& in);
std::string render_markdown(const ReportInput& in);
json render_json(const ReportInput& in);

// The start of every vmlat HTML page up to and including <body>: the
// Content-Security-Policy that allows no fetch and no script but `script`
// (by its SHA-256; the page adds the script itself), the report's style
// sheet (plot classes of plots.hpp) plus `extra_style`, and `title` (escaped
// here).
std::string html_page_start(const std::string& title, const std::string& extra_style = {}, std::string_view script = {});

}  // namespace vmlat::report
