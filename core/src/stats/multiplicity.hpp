// Multiplicity control over a family of p-values (docs/statistics.md,
// "Multiplicity"): adjusted p-values, so that "reject when adjusted <= alpha"
// is the procedure at level alpha.
#pragma once

#include <span>
#include <string_view>
#include <vector>

namespace vmlat::stats {

enum class Correction {
  none,  // each p-value on its own (only for a family of one)
  holm,  // Holm (1979): the family-wise error rate, any dependence
  bh,    // Benjamini & Hochberg (1995): the false discovery rate; under the
         // complete null it equals the family-wise error rate
};
std::string_view correction_name(Correction c);

// Adjusted p-values in the order of `p`. A NaN p-value is not a member of the
// family (its adjusted value is NaN and it does not count in m).
std::vector<double> holm_adjusted(std::span<const double> p);
std::vector<double> bh_adjusted(std::span<const double> p);
std::vector<double> adjusted(std::span<const double> p, Correction c);

}  // namespace vmlat::stats
