// The report page's data (docs/report.md, "The page's data"): what the
// page's script (report_page.js) draws from, embedded once in the page as
// blocks — the index, JSON read at load (axes, and per cell its id, axes,
// status, verdicts, max, p99, gates), and the details, compressed JSON read
// when a cell, a figure or the tails table is first opened (statistics,
// histograms, worst wake-ups, files, facts, figures, tails).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plots.hpp"
#include "report.hpp"
#include "vmlat/json.hpp"

namespace vmlat::report {

// "MIN_NS,MAX_NS,OVERFLOWS,BUCKETS": BUCKETS a run of base64url varints (5
// bits a character, low bits first, 32 added to every character but a
// value's last), per non-empty 1 us bucket count*2 when it follows the
// previous bucket directly, else count*2+1 and the number of empty buckets
// before it. A few characters a bucket where JSON pairs take ten.
std::string encode_histogram(const HistogramData& h);

// An overlay figure (model.hpp Overlay) as the page shows it: drawn by the
// script from the specification shared["figures"][spec] (its cells and
// labels), or, for a plan's figure with fewer than two measured cells, a note.
struct Figure {
  std::string kind, draw, title;
  std::string ids;  // the measured cells drawn, space-separated
  std::size_t lines = 0, left_out = 0, spec = 0;
  bool drawn = false;
};

struct PageData {
  json index;
  json shared;              // facts, figures, tails, run_lengths
  std::vector<Figure> figures;
  bool default_figures = true;
  std::vector<json> cells;  // each cell's details, in cell order
  std::string timelines;    // <template id="timeline-N"> for each cell with a guest/host time line
};
PageData page_data(const ReportInput& in);

// The data blocks of the page: the index as JSON; the shared details and the
// cells' details in chunks of kCellsPerChunk, each deflated on its own (one
// huge block is several times slower for a browser to read than many of
// 100 kB; opening a cell inflates its chunk only).
inline constexpr std::size_t kCellsPerChunk = 64;
std::string page_data_html(const PageData& data);

// A JSON document as the text of a <script type="application/json">: every
// '<' written \u003c, so that no value can end the element or open a comment.
std::string script_json(const json& j);

// zlib's deflate (RFC 1950) of `text`, in base64: the details as the page
// carries them (its script inflates them with the browser's
// DecompressionStream). The facts, files and messages cells share, and the
// JSON's own keys, shrink to a fraction; a real run's histograms and worst
// wake-ups, which differ from cell to cell, to about two thirds.
std::string deflate_base64(std::string_view text);

// report_page.js, the page's one script, built into the library.
std::string_view report_page_script();

}  // namespace vmlat::report
