// Every error case of tests/plans through the CLI as a user meets it:
// `vmlat validate`, `vmlat plan` and `vmlat run` each exit 2 (a bad plan,
// nothing run), print exactly the case's expected.err and the error count,
// and `run` creates no results. A case that crashed or hung the loader would
// show here as a signal or a timeout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "cli_fixture.hpp"
#include "plan_cases.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
namespace fs = std::filesystem;
using vmlat::testing::read_file;
using vmlat::testing::replace_all;

namespace {

// Where plugins were searched differs (the CLI also looks in the install
// directory): the rest of the message must not.
std::string normalized(const std::string& diagnostics, const fs::path& plan) {
  static const std::regex searched(R"(\(searched: [^;]*;)");
  return std::regex_replace(replace_all(replace_all(diagnostics, plan.string(), "plan.toml"), VMLAT_BINARY_DIR, "<build>"),
                            searched, "(searched: ...;");
}

std::vector<std::string> error_cases() {
  std::vector<std::string> names;
  for (const auto& name : vmlat::testing::plan_case_names())
    if (fs::exists(vmlat::testing::kPlanCases / name / "expected.err")) names.push_back(name);
  return names;
}

class PlanCaseCli : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  vmlat::testing::CliResult vmlat(std::vector<std::string> args) {
    args.insert(args.begin(), vmlat::testing::kVmlat.string());
    const auto out = dir_ / "stdout", err = dir_ / "stderr";
    auto p = Process::spawn(ProcessSpec{args, {}, out, err, dir_});
    auto status = p.wait(Clock::now() + std::chrono::seconds(60), false);
    if (status.timed_out) p.stop(std::chrono::seconds(5));
    return {status.timed_out ? -2 : status.signal ? 128 + status.signal : status.exit_code, read_file(out), read_file(err)};
  }

  fs::path dir_ = fs::temp_directory_path() / ("vmlat-plan-cases-cli-" + std::to_string(getpid()) + "-" + GetParam());
};

TEST_P(PlanCaseCli, EveryCommandExits2WithTheErrors) {
  const fs::path plan = vmlat::testing::plan_case_path(GetParam(), dir_ / "case");
  const std::string expected = normalized(read_file(vmlat::testing::kPlanCases / GetParam() / "expected.err"), plan);
  const auto errors = std::count(expected.begin(), expected.end(), '\n');
  const std::string summary = "plan.toml: " + std::to_string(errors) + " error" + (errors == 1 ? "" : "s") + "\n";
  const fs::path results = dir_ / "results";
  for (std::vector<std::string> command : {std::vector<std::string>{"validate"}, {"plan"}, {"run", "--results", results.string()}}) {
    const std::string name = command.front();
    command.insert(command.begin() + 1, plan.string());
    const auto r = vmlat(command);
    EXPECT_EQ(r.code, 2) << "vmlat " << name << ":\n" << r.err;
    EXPECT_EQ(normalized(r.err, plan), expected + summary) << "vmlat " << name;
    EXPECT_EQ(r.out, "") << "vmlat " << name;
  }
  EXPECT_FALSE(fs::exists(results)) << "vmlat run created results for a plan with errors";
}

INSTANTIATE_TEST_SUITE_P(Plans, PlanCaseCli, ::testing::ValuesIn(error_cases()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
