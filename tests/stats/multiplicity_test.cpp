// Multiplicity corrections (core/src/stats/multiplicity.hpp) against their
// definitions as rejection procedures, on random families.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "stats/multiplicity.hpp"

using namespace vmlat::stats;

namespace {

// Holm (1979) as a step-down procedure: sort, reject while p(j) <= alpha/(m-j+1).
std::vector<bool> holm_rejects(const std::vector<double>& p, double alpha) {
  std::vector<std::size_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](auto a, auto b) { return p[a] < p[b]; });
  std::vector<bool> r(p.size(), false);
  for (std::size_t j = 0; j < idx.size(); ++j) {
    if (p[idx[j]] > alpha / static_cast<double>(idx.size() - j)) break;
    r[idx[j]] = true;
  }
  return r;
}
// Benjamini & Hochberg (1995) as a step-up procedure: the largest k with
// p(k) <= k alpha / m; reject p(1..k).
std::vector<bool> bh_rejects(const std::vector<double>& p, double alpha) {
  std::vector<double> s = p;
  std::sort(s.begin(), s.end());
  double cut = -1;
  for (std::size_t k = s.size(); k >= 1; --k)
    if (s[k - 1] <= alpha * static_cast<double>(k) / static_cast<double>(s.size())) {
      cut = s[k - 1];
      break;
    }
  std::vector<bool> r(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) r[i] = p[i] <= cut;
  return r;
}

}  // namespace

TEST(Multiplicity, AdjustedPValuesRejectAsTheProcedures) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  for (int family = 0; family < 500; ++family) {
    const std::size_t m = 1 + family % 40;
    std::vector<double> p(m);
    // Mix of nulls and small p-values, with ties.
    for (auto& v : p) v = u(rng) < 0.3 ? std::pow(u(rng), 6) : u(rng);
    if (m > 3) p[1] = p[2];
    const auto holm = holm_adjusted(p), bh = bh_adjusted(p);
    for (double alpha : {0.01, 0.05, 0.2}) {
      const auto hr = holm_rejects(p, alpha), br = bh_rejects(p, alpha);
      for (std::size_t i = 0; i < m; ++i) {
        EXPECT_EQ(holm[i] <= alpha, hr[i]) << "holm family " << family << " i " << i;
        EXPECT_EQ(bh[i] <= alpha, br[i]) << "bh family " << family << " i " << i;
      }
    }
    for (std::size_t i = 0; i < m; ++i) {
      EXPECT_GE(holm[i], p[i]);
      EXPECT_GE(bh[i], p[i]);
      EXPECT_LE(bh[i], holm[i] + 1e-15);  // BH never rejects less than Holm
      EXPECT_LE(holm[i], 1.0);
    }
  }
}

TEST(Multiplicity, NaNIsNotAMemberOfTheFamily) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> p{0.01, nan, 0.04, nan};
  const auto holm = holm_adjusted(p), bh = bh_adjusted(p);
  EXPECT_TRUE(std::isnan(holm[1]) && std::isnan(holm[3]) && std::isnan(bh[1]) && std::isnan(bh[3]));
  EXPECT_DOUBLE_EQ(holm[0], 0.02);  // m = 2, not 4
  EXPECT_DOUBLE_EQ(holm[2], 0.04);
  EXPECT_DOUBLE_EQ(bh[0], 0.02);
  EXPECT_DOUBLE_EQ(bh[2], 0.04);
  EXPECT_EQ(adjusted(p, Correction::none)[0], 0.01);
}

TEST(Multiplicity, FamilyWiseErrorUnderTheCompleteNull) {
  // 1,000 independent null p-values: each correction rejects anything in at
  // most alpha of the families.
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(0, 1);
  int holm_any = 0, bh_any = 0;
  const int families = 4000;
  std::vector<double> p(1000);
  for (int f = 0; f < families; ++f) {
    for (auto& v : p) v = u(rng);
    const auto h = holm_adjusted(p), b = bh_adjusted(p);
    holm_any += *std::min_element(h.begin(), h.end()) <= 0.01;
    bh_any += *std::min_element(b.begin(), b.end()) <= 0.01;
  }
  EXPECT_LE(holm_any, families / 100 + 3 * 7);
  EXPECT_LE(bh_any, families / 100 + 3 * 7);
  EXPECT_GT(holm_any, 0);  // and not by rejecting nothing ever
}
