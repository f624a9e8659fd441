// `vmlat lint-domain` as a user runs it: the built vmlat, which execs
// libexec's vmlat-lint-domain, on the reference domain XMLs and on bad input;
// exit codes 0 / 1 / 2 / 3 as documented (README.md).
#include <gtest/gtest.h>

#include <fstream>

#include "cli_fixture.hpp"

using namespace vmlat;
using namespace vmlat::testing;

namespace {

const std::string kData = VMLAT_LIBVIRT_TESTDATA;
// The host the reference XMLs are judged against (README.md).
const std::vector<std::string> kGoodHost{"--host-cpus", "0-3", "--isolated", "2-3", "--nohz-full", "2-3"};
const std::vector<std::string> kBadHost{"--host-cpus", "0-3", "--isolated", "2", "--nohz-full", ""};

class LintDomainCli : public CliTest {
 protected:
  CliResult lint(std::vector<std::string> args) {
    args.insert(args.begin(), "lint-domain");
    return vmlat(std::move(args), {}, std::chrono::seconds(60));
  }
};

}  // namespace

TEST_F(LintDomainCli, GoodDomainIsClean) {
  std::vector<std::string> args{kData + "/good-domain.xml", "--format", "json"};
  args.insert(args.end(), kGoodHost.begin(), kGoodHost.end());
  auto r = lint(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["file"], kData + "/good-domain.xml");
  EXPECT_TRUE(j["lint"]["findings"].empty()) << r.out;
  EXPECT_EQ(j["lint"]["host"]["isolated"], "2,3");
}

TEST_F(LintDomainCli, BadDomainFiresEveryRuleOnceAndExitsOne) {
  std::vector<std::string> args{kData + "/bad-domain.xml", "--format", "json"};
  args.insert(args.end(), kBadHost.begin(), kBadHost.end());
  auto r = lint(args);
  ASSERT_EQ(r.code, 1) << r.err;
  const json j = json::parse(r.out);
  std::map<std::string, int> fired;
  for (const auto& f : j["lint"]["findings"]) {
    ++fired[f["rule"].get<std::string>()];
    for (const char* key : {"severity", "path", "message", "fix"})
      EXPECT_FALSE(f[key].get<std::string>().empty()) << f.dump();
  }
  ASSERT_FALSE(j["lint"]["rules"].empty());
  for (const auto& rule : j["lint"]["rules"]) EXPECT_EQ(fired[rule["rule"].get<std::string>()], 1) << rule.dump();
  EXPECT_EQ(fired.size(), j["lint"]["rules"].size());
  // The text form names each finding's rule, path and fix.
  auto text = lint({kData + "/bad-domain.xml", "--no-host"});
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.out.find("emulatorpin  /domain/cputune/emulatorpin"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("fix: <memoryBacking><locked/></memoryBacking>"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("host rules not checked"), std::string::npos);
}

TEST_F(LintDomainCli, BadInputIsExitTwo) {
  const auto junk = dir_ / "junk.xml";
  std::ofstream(junk) << "<domain><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='--x'/></cputune></domain>";
  auto r = lint({junk.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cpuset"), std::string::npos) << r.err;
  EXPECT_EQ(lint({(dir_ / "missing.xml").string()}).code, 2);
  EXPECT_EQ(lint({}).code, 2);
  EXPECT_EQ(lint({"--bogus", junk.string()}).code, 2);
  EXPECT_EQ(lint({junk.string(), "--format", "yaml"}).code, 2);
  EXPECT_EQ(lint({junk.string(), "--isolated", "x-y"}).code, 2);
  auto help = lint({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: vmlat lint-domain"), std::string::npos);
}

TEST_F(LintDomainCli, UnreachableLibvirtIsExitThree) {
  // A socket path nobody listens on: libvirt cannot be reached.
  auto r = lint({"some-domain", "--uri", "qemu:///system?socket=" + (dir_ / "no.sock").string()});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
}
