// The history page (`vmlat history --format html`) from a History built by
// hand: hostile cell ids and fact values are text, never markup; change
// points are marked on their cell's plot at their run, and only there.
#include <gtest/gtest.h>

#include <regex>

#include "history.hpp"

using namespace vmlat::report;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

const std::string kMarkup = "<script>alert(1)</script><b onmouseover=\"x\">'&";

History hostile_history(bool with_change) {
  History h;
  h.dir = "results/" + kMarkup;
  h.plan = "plan " + kMarkup;
  for (int i = 0; i < 6; ++i) {
    h.run_ids.push_back("r" + std::to_string(i));
    h.run_started.push_back("2026-02-01T00:00:0" + std::to_string(i) + "Z");
  }
  for (const std::string& cell : {std::string("quiet"), "cell " + kMarkup})
    for (const std::string stat : {"p50", "max"}) {
      HistorySeries s{cell, stat, {}, {}};
      for (std::size_t i = 0; i < 6; ++i) {
        s.runs.push_back(i);
        const double level = stat == "max" ? 50000 : 5000;
        s.values_ns.push_back(with_change && cell != "quiet" && stat == "max" && i >= 3 ? 4 * level : level);
      }
      h.series.push_back(s);
    }
  if (with_change)
    h.changes.push_back(HistoryChange{"cell " + kMarkup, "max", "local", "r3", "r2", 50000, 200000, 1e-4,
                                      {{"host.kernel_release", "\"6.1\"", "\"" + kMarkup + "\""}}});
  return h;
}

}  // namespace

TEST(HistoryPage, MarksTheChangeOnItsCellAndEscapesEveryValue) {
  const std::string page = history_html(hostile_history(true));
  // No element the markup would have made: every '<' of it arrives as &lt;.
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<b onmouseover"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;&lt;b onmouseover=&quot;x&quot;&gt;&#39;&amp;"), std::string::npos);
  EXPECT_NE(page.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg")) << "nothing fetched from the network";
  // One plot per cell; the change marked once, on the hostile cell's plot, at run 4 of 6.
  EXPECT_EQ(count(page, "<svg "), 2u);
  EXPECT_EQ(count(page, "<line class=\"change stat-max\""), 1u);
  std::smatch m;
  const std::string plot_of_changed = page.substr(page.find("data-change-points=\"1\""));
  ASSERT_TRUE(std::regex_search(plot_of_changed, m, std::regex("<line class=\"change stat-max\" x1=\"([0-9.]+)\"")));
  // Runs 1..6 over x 56..536 (plots.cpp geometry) with half a run either side: run 4 at 56 + 3.5/6 * 480.
  EXPECT_NEAR(std::stod(m[1]), 56 + 3.5 / 6 * 480, 0.1);
  EXPECT_NE(page.find("data-fact=\"host.kernel_release\""), std::string::npos);
  EXPECT_NE(page.find("<tr class=\"change-point\" data-cell-id=\"cell &lt;script&gt;"), std::string::npos);
  EXPECT_EQ(count(page, "<tr class=\"change-point\""), 1u);
  // The quiet cell's plot has both its lines and no mark.
  const auto quiet = page.find("data-cell-id=\"quiet\" data-change-points=\"0\"");
  ASSERT_NE(quiet, std::string::npos);
  const std::string quiet_section = page.substr(quiet, page.find("</section>", quiet) - quiet);
  EXPECT_EQ(count(quiet_section, "<path class=\"line stat-"), 2u);
  EXPECT_EQ(count(quiet_section, "class=\"change"), 0u);
}

TEST(HistoryPage, NoChangeNoMark) {
  const std::string page = history_html(hostile_history(false));
  EXPECT_EQ(count(page, "class=\"change"), 0u);
  EXPECT_NE(page.find("No change points."), std::string::npos);
  EXPECT_EQ(count(page, "<svg "), 2u);
}
