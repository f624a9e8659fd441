// Reads a captured probe output from plugins/cyclic/testdata.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

inline std::string testdata(const std::string& name) {
  std::ifstream in(std::filesystem::path(CYCLIC_TESTDATA_DIR) / name, std::ios::binary);
  EXPECT_TRUE(in) << "missing test file " << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
