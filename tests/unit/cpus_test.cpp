#include <gtest/gtest.h>

#include "vmlat/cpus.hpp"

using vmlat::format_cpu_list;
using vmlat::parse_cpu_list;

TEST(CpuList, ParsesKernelLists) {
  EXPECT_EQ(parse_cpu_list("0-3,5\n"), (std::vector<int>{0, 1, 2, 3, 5}));
  EXPECT_EQ(parse_cpu_list("\t7,1,1,2-2"), (std::vector<int>{1, 2, 7}));
  EXPECT_EQ(parse_cpu_list("0"), (std::vector<int>{0}));
  for (const char* bad : {"", " \n", "a", "3-1", "1,,2", "-1", "1-", "0,1,", "99999"})
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << bad;
  EXPECT_EQ(format_cpu_list({0, 2, 3}), "0,2,3");
  EXPECT_EQ(format_cpu_list({}), "");
}

TEST(CpuList, OverlappingRangesAreMerged) {
  EXPECT_EQ(parse_cpu_list("5,1-3,2-6,4"), (std::vector<int>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(parse_cpu_list("10-12,0-1,11-20").size(), 13u);
  EXPECT_EQ(parse_cpu_list("65535"), (std::vector<int>{65535}));
  // Ten thousand full ranges: the list is every CPU once (and this does not
  // take 655 million insertions).
  std::string many;
  for (int i = 0; i < 10000; ++i) many += (i ? ",0-65535" : "0-65535");
  const auto cpus = parse_cpu_list(many);
  ASSERT_EQ(cpus.size(), 65536u);
  EXPECT_EQ(cpus.front(), 0);
  EXPECT_EQ(cpus.back(), 65535);
}
