// The RT lint on the two reference domains (every rule fires once on the bad
// one, none on the good one), each rule alone, the parser on hostile input.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "domain_xml.hpp"
#include "rt_lint.hpp"

using namespace vmlat::libvirt;

namespace {

std::string read(const std::string& name) {
  std::ifstream in(std::string(VMLAT_LIBVIRT_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HostView host(std::vector<int> isolated, std::vector<int> nohz) {
  HostView h;
  h.cpus = {0, 1, 2, 3};
  h.isolated = std::move(isolated);
  h.nohz_full = std::move(nohz);
  h.source = "the test host";
  return h;
}

std::map<std::string, int> count(const LintReport& r) {
  std::map<std::string, int> n;
  for (const auto& f : r.findings) ++n[f.rule];
  return n;
}

// The good domain with one edit applied: `from` replaced by `to`.
LintReport good_with(const std::string& from, const std::string& to, const HostView& h) {
  std::string xml = read("good-domain.xml");
  const auto at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) xml.replace(at, from.size(), to);
  return lint_domain(parse_domain_xml(xml), &h);
}

}  // namespace

TEST(RtLint, EveryRuleFiresOnceOnTheBadDomain) {
  const HostView h = host({2}, {});
  const LintReport r = lint_domain(parse_domain_xml(read("bad-domain.xml")), &h);
  auto n = count(r);
  for (const auto& rule : rules()) EXPECT_EQ(n[rule.id], 1) << rule.id;
  EXPECT_EQ(r.findings.size(), rules().size());
  for (const auto& f : r.findings) {
    EXPECT_FALSE(f.path.empty()) << f.rule;
    EXPECT_FALSE(f.fix.empty()) << f.rule;
    EXPECT_TRUE(f.severity == "error" || f.severity == "warning") << f.rule;
  }
  EXPECT_EQ(r.rt_vcpus, (std::vector<int>{0, 1, 2}));
}

TEST(RtLint, NoRuleFiresOnTheGoodDomain) {
  const HostView h = host({2, 3}, {2, 3});
  const LintReport r = lint_domain(parse_domain_xml(read("good-domain.xml")), &h);
  for (const auto& f : r.findings) ADD_FAILURE() << f.rule << ": " << f.message;
  EXPECT_EQ(r.rt_vcpus, (std::vector<int>{1, 2}));
  const auto j = lint_json(r, &h);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["rules"].size(), rules().size());
}

TEST(RtLint, EachRuleAloneOnTheGoodDomain) {
  const HostView h = host({2, 3}, {2, 3});
  struct Case {
    std::string from, to, rule;
  };
  const std::vector<Case> cases = {
      {"<vcpupin vcpu='0' cpuset='0'/>", "", "vcpupin"},
      {"<vcpupin vcpu='2' cpuset='3'/>", "<vcpupin vcpu='2' cpuset='2'/>", "vcpupin-exclusive"},
      {"<emulatorpin cpuset='0-1'/>", "", "emulatorpin"},
      {"scheduler='fifo' priority='1'", "scheduler='fifo' priority='2'", "vcpusched-priority"},
      {"<hugepages/>", "", "hugepages"},
      {"<locked/>", "", "locked"},
      {"<nosharepages/>", "", "nosharepages"},
      {"<pmu state='off'/>", "<pmu state='on'/>", "pmu"},
      {"policy='require' name='tsc-deadline'", "policy='disable' name='tsc-deadline'", "tsc-deadline"},
      {"<memballoon model='none'/>", "", "memballoon"},
      {"<vcpupin vcpu='0' cpuset='0'/>", "<vcpupin vcpu='0' cpuset='9'/>", "host-cpus"},
      {"<emulatorpin cpuset='0-1'/>", "<emulatorpin cpuset='0-1,^1'/><!-- -->", ""},
  };
  for (const auto& c : cases) {
    auto n = count(good_with(c.from, c.to, h));
    if (c.rule.empty()) {
      EXPECT_TRUE(n.empty()) << c.to;
      continue;
    }
    EXPECT_EQ(n[c.rule], 1) << c.rule;
    EXPECT_EQ(n.size(), 1u) << c.rule << ": " << n.begin()->first;
  }
  // Every vCPU real-time, each on an isolated CPU of its own, the emulator
  // on the one housekeeping CPU: only housekeeping-vcpu fires.
  {
    std::string xml = read("good-domain.xml");
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"<vcpupin vcpu='0' cpuset='0'/>", "<vcpupin vcpu='0' cpuset='1'/>"},
             {"<emulatorpin cpuset='0-1'/>", "<emulatorpin cpuset='0'/>"},
             {"vcpus='1-2' scheduler='fifo'", "vcpus='0-2' scheduler='fifo'"}}) {
      ASSERT_NE(xml.find(from), std::string::npos) << from;
      xml.replace(xml.find(from), from.size(), to);
    }
    const HostView three = host({1, 2, 3}, {1, 2, 3});
    auto n = count(lint_domain(parse_domain_xml(xml), &three));
    EXPECT_EQ(n, (std::map<std::string, int>{{"housekeeping-vcpu", 1}}));
  }
  // The scheduler: rr instead of fifo, and no vcpusched at all.
  auto rr = count(good_with("scheduler='fifo'", "scheduler='rr'", h));
  EXPECT_EQ(rr["vcpusched"], 1);
  auto none = count(good_with("<vcpusched vcpus='1-2' scheduler='fifo' priority='1'/>", "", h));
  EXPECT_EQ(none["vcpusched"], 1);
  EXPECT_EQ(none.size(), 1u);  // vCPUs 1-2 stay real-time by the kbase layout
  // The host rules, each from the host's side.
  const DomainXml good = parse_domain_xml(read("good-domain.xml"));
  const HostView not_isolated = host({3}, {2, 3}), ticking = host({2, 3}, {2}), emulator_isolated = host({0, 2, 3}, {2, 3});
  EXPECT_EQ(count(lint_domain(good, &not_isolated))["host-isolcpus"], 1);
  EXPECT_EQ(count(lint_domain(good, &ticking))["host-nohz-full"], 1);
  EXPECT_EQ(count(lint_domain(good, &emulator_isolated))["emulatorpin-isolated"], 1);
  // Without a host view the host rules are not checked (and say so).
  const LintReport bare = lint_domain(parse_domain_xml(read("bad-domain.xml")), nullptr);
  for (const auto& f : bare.findings) EXPECT_NE(f.rule.rfind("host-", 0), 0u) << f.rule;
  const auto j = lint_json(bare, nullptr);
  for (const auto& r : j["rules"])
    EXPECT_EQ(r["checked"].get<bool>(), r["rule"].get<std::string>().rfind("host-", 0) != 0 && r["rule"] != "emulatorpin-isolated");
}

TEST(RtLint, HostPassthroughCountsAsTscDeadline) {
  const HostView h = host({2, 3}, {2, 3});
  auto n = count(good_with("<cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model><feature policy='require' name='tsc-deadline'/></cpu>",
                           "<cpu mode='host-passthrough'/>", h));
  EXPECT_TRUE(n.empty());
}

TEST(DomainXml, HostileInputIsAnErrorNotACrash) {
  for (const std::string xml : {std::string(""), std::string("<domain"), std::string("<notdomain/>"),
                                std::string("<domain><vcpu>-1</vcpu></domain>"),
                                std::string("<domain><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='a-b'/></cputune></domain>"),
                                std::string("<domain><cputune><emulatorpin cpuset='0,^0'/></cputune></domain>"),
                                std::string("<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain><name>&x;</name></domain>")}) {
    try {
      auto d = parse_domain_xml(xml);
      // The external entity is never read.
      EXPECT_EQ(d.name.find("root:"), std::string::npos);
    } catch (const DomainXmlError& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
  EXPECT_THROW(parse_domain_xml("<domain"), DomainXmlError);
  EXPECT_THROW(parse_domain_xml("<notdomain/>"), DomainXmlError);
  EXPECT_THROW(parse_domain_xml(std::string(5u << 20, ' ')), DomainXmlError);
}

TEST(DomainXml, Cpusets) {
  EXPECT_EQ(parse_cpuset("0-3,^2", "x"), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(parse_cpuset("5", "x"), (std::vector<int>{5}));
  EXPECT_THROW(parse_cpuset("", "x"), DomainXmlError);
  EXPECT_THROW(parse_cpuset("1-", "x"), DomainXmlError);
}

TEST(DomainXml, ChannelAndBoot) {
  auto d = parse_domain_xml(
      "<domain type='kvm'><name>n</name><uuid>u</uuid><os><kernel>/k</kernel><initrd>/i</initrd><cmdline>a b</cmdline></os>"
      "<devices><channel type='unix'><source mode='bind' path='/run/x.sock'/><target type='virtio' name='org.vmlat.0'/>"
      "</channel></devices></domain>");
  ASSERT_NE(d.channel("org.vmlat.0"), nullptr);
  EXPECT_EQ(d.channel("org.vmlat.0")->source_path, "/run/x.sock");
  EXPECT_EQ(d.channel("other"), nullptr);
  EXPECT_EQ(d.kernel, "/k");
  EXPECT_EQ(d.cmdline, "a b");
  EXPECT_EQ(d.type, "kvm");
}
