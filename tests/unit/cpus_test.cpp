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
