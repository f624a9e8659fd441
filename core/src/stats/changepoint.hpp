// Change points in a series of runs (docs/statistics.md, "Change points"):
// E-divisive means (Matteson & James 2014) locates a candidate, a two-sample
// t-test of the log values on either side, Bonferroni-corrected for the
// positions the candidate was chosen among, decides (the approach of
// Hunter/Apache Otava, Fleming et al. 2023, with that selection correction);
// binary segmentation repeats inside the segments, each at a share of the
// level in proportion to its length. Over many series the control is
// Benjamini-Bogomolov (2014): series selected by Benjamini-Hochberg on their
// first test, later splits at alpha * selected / series.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat::stats {

struct ChangePoint {
  std::size_t index = 0;  // the first run after the change (0-based, oldest first)
  double before_ns = 0;   // median of the segment before
  double after_ns = 0;    // median of the segment after
  double p = 1;           // the test's p-value (selection-corrected, before the family's correction)
};

struct ChangePointOptions {
  double confidence = 0.99;
  std::size_t min_segment = 3;  // runs on each side of a change (>= 2)
  // The statistic's quantum (1000 ns for a percentile of 1 us buckets): its
  // rounding variance is added to each side's, so that a flat series is not
  // a spread of zero.
  double resolution_ns = 0;
};

// One series on its own (oldest run first): each test at 1 - confidence.
std::vector<ChangePoint> change_points(std::span<const double> series_ns, const ChangePointOptions& options = {});

// Many series (every cell and statistic of a plan), controlled together.
std::vector<std::vector<ChangePoint>> change_points(std::span<const std::vector<double>> series,
                                                    const ChangePointOptions& options = {});
// The same, each series with its own quantum (percentiles 1000 ns, maxima 0):
// `resolutions_ns[i]` replaces options.resolution_ns for series i.
std::vector<std::vector<ChangePoint>> change_points(std::span<const std::vector<double>> series,
                                                    std::span<const double> resolutions_ns,
                                                    const ChangePointOptions& options);

// {index, before_ns, after_ns, p}
json to_json(const ChangePoint& c);

// The E-divisive divergence Q(tau) of y[0..tau) against y[tau..n) for every
// tau (0 outside [min_segment, n - min_segment]); exposed for tests.
std::vector<double> edivisive_statistic(std::span<const double> y, std::size_t min_segment);

}  // namespace vmlat::stats
