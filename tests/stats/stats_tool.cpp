// The fits of vmlat_stats on data given as a file, for the scipy cross-check
// (tests/stats/scipy_check.py). Not installed.
//
//   vmlat_stats_tool gpd FILE   FILE: {"histogram": <result.json histogram>, "duration_s": s}
//   vmlat_stats_tool gev FILE   FILE: {"x": [block maxima ...]}
// Prints one JSON document on stdout; exit 2 on bad usage or input.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "stats/tail.hpp"

using namespace vmlat;
using namespace vmlat::stats;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: vmlat_stats_tool gpd|gev FILE\n");
    return 2;
  }
  const std::string what = argv[1];
  std::ifstream in(argv[2]);
  try {
    const json j = json::parse(in);
    json out;
    if (what == "gpd") {
      const auto h = Histogram::from_json(j.at("histogram"));
      const auto f = fit_tail(h, j.at("duration_s").get<double>());
      out = to_json(f);
      out["loglik"] = f.loglik;
      out["edges_us"] = f.edges_us;
      out["counts"] = f.counts;
    } else if (what == "gev") {
      const auto x = j.at("x").get<std::vector<double>>();
      const auto gev = fit_gev(x), gum = fit_gumbel(x);
      out = {{"gev", {{"mu", gev.mu}, {"sigma", gev.sigma}, {"xi", gev.xi}, {"loglik", gev.loglik}}},
             {"gumbel", {{"mu", gum.mu}, {"sigma", gum.sigma}, {"loglik", gum.loglik}}}};
    } else {
      std::fprintf(stderr, "vmlat_stats_tool: unknown fit '%s'\n", what.c_str());
      return 2;
    }
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vmlat_stats_tool: %s\n", e.what());
    return 2;
  }
  return 0;
}
