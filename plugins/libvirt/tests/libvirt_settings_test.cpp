// The transient domain's XML as vmlat writes it: read back by the same
// parser the lint uses, its RT tuning fires no rule it can satisfy; hostile
// plan values stay text; the FIFO starvation rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "domain_xml.hpp"
#include "libvirt_settings.hpp"
#include "rt_lint.hpp"

using namespace vmlat::libvirt;

namespace {

TransientDomain transient(std::string type = "kvm") {
  TransientDomain t;
  t.name = "vmlat-cell-1";
  t.type = std::move(type);
  t.kernel = "/cache/vmlinuz";
  t.initrd = "/cache/initramfs.img";
  t.cmdline = "console=ttyS0 quiet";
  t.channel_path = "/tmp/vmlat-libvirt-x/chan.sock";
  t.console_path = "/tmp/vmlat-libvirt-x/console.log";
  return t;
}

Config rt_config() {
  Config c;
  c.define = true;
  c.vcpus = 3;
  c.vcpu_pin = {0, 2, 3};
  c.emulator_pin = {0, 1};
  c.hugepages = true;
  return c;
}

std::map<std::string, int> fired(const DomainXml& d, const HostView* h) {
  std::map<std::string, int> n;
  for (const auto& f : lint_domain(d, h).findings) ++n[f.rule];
  return n;
}

TEST(LibvirtSshAccess, PlanValuesStandWhereSshCannotReadThemAsOptions) {
  Config c;
  c.access = "ssh";
  c.ssh_address = "192.0.2.7";
  c.ssh_port = 2222;
  c.ssh_user = "rt-user";
  c.ssh_identity_file = "/keys/-id";
  c.ssh_known_hosts = "/keys/known hosts";
  const auto argv = vmlat::ssh_argv(ssh_target(c), vmlat::remote_command_line({"cyclictest", "-q", "$(reboot)", "a'b"}));
  auto after = [&](const std::string& option) {
    auto it = std::find(argv.begin(), argv.end(), option);
    return it == argv.end() || it + 1 == argv.end() ? std::string("(none)") : *(it + 1);
  };
  EXPECT_EQ(argv.front(), "ssh");
  EXPECT_EQ(after("-p"), "2222");
  EXPECT_EQ(after("-l"), "rt-user");
  EXPECT_EQ(after("-i"), "/keys/-id");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "UserKnownHostsFile=/keys/known hosts"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "BatchMode=yes"), argv.end());
  // The destination after "--", then one word: the command, each word quoted for the remote shell.
  ASSERT_GE(argv.size(), 3u);
  EXPECT_EQ(argv[argv.size() - 3], "--");
  EXPECT_EQ(argv[argv.size() - 2], "192.0.2.7");
  EXPECT_EQ(argv.back(), "'cyclictest' '-q' '$(reboot)' 'a'\\''b'");
}

TEST(LibvirtSshAccess, HostileSshValuesAreRefused) {
  using vmlat::SshSetting;
  for (const char* bad : {"-oProxyCommand=touch /tmp/x", "root@host", "a b", "host\nx", ""})
    EXPECT_TRUE(vmlat::ssh_setting_problem(SshSetting::address, bad)) << bad;
  for (const char* bad : {"-l", "ro ot", "root;id", "r\n"}) EXPECT_TRUE(vmlat::ssh_setting_problem(SshSetting::user, bad)) << bad;
  EXPECT_TRUE(vmlat::ssh_setting_problem(SshSetting::identity_file, "-i"));
  EXPECT_FALSE(vmlat::ssh_setting_problem(SshSetting::address, "guest-1.lab.example"));
  EXPECT_FALSE(vmlat::ssh_setting_problem(SshSetting::address, "fe80::1"));
  EXPECT_FALSE(vmlat::ssh_setting_problem(SshSetting::user, "rt_user.1"));
}

}  // namespace

TEST(TransientDomainXml, CarriesTheTuningAndPassesTheLint) {
  const Config c = rt_config();
  const DomainXml d = parse_domain_xml(transient_domain_xml(c, transient()));
  EXPECT_EQ(d.name, "vmlat-cell-1");
  EXPECT_EQ(d.vcpus, 3);
  EXPECT_EQ(d.vcpupin.at(2), (std::vector<int>{3}));
  EXPECT_EQ(*d.emulatorpin, (std::vector<int>{0, 1}));
  ASSERT_EQ(d.vcpusched.size(), 1u);
  EXPECT_EQ(d.vcpusched[0].vcpus, (std::vector<int>{1, 2}));
  EXPECT_EQ(d.vcpusched[0].scheduler, "fifo");
  EXPECT_EQ(d.vcpusched[0].priority, 1);
  EXPECT_TRUE(d.locked && d.hugepages && d.nosharepages);
  ASSERT_NE(d.channel("org.vmlat.0"), nullptr);
  EXPECT_EQ(d.channel("org.vmlat.0")->source_path, "/tmp/vmlat-libvirt-x/chan.sock");
  EXPECT_EQ(d.kernel, "/cache/vmlinuz");
  HostView h;
  h.cpus = {0, 1, 2, 3};
  h.isolated = {2, 3};
  h.nohz_full = {2, 3};
  auto n = fired(d, &h);
  for (const auto& [rule, count] : n) ADD_FAILURE() << rule << " fired " << count;
}

TEST(TransientDomainXml, WhatIsSwitchedOffIsWhatTheLintReports) {
  Config c = rt_config();
  c.lock_memory = false;
  c.hugepages = false;
  c.vcpu_priority = 0;
  // TCG: no host-passthrough, so no TSC deadline timer is asked for.
  auto n = fired(parse_domain_xml(transient_domain_xml(c, transient("qemu"))), nullptr);
  EXPECT_EQ(n, (std::map<std::string, int>{{"locked", 1}, {"hugepages", 1}, {"vcpusched", 1}, {"tsc-deadline", 1}}));
}

TEST(TransientDomainXml, HostileValuesStayText) {
  Config c = rt_config();
  c.channel = "x'/><evil a='";
  TransientDomain t = transient();
  t.name = "a</name><vcpu>64</vcpu><name>b";
  t.cmdline = "quiet & <script>";
  const DomainXml d = parse_domain_xml(transient_domain_xml(c, t));
  EXPECT_EQ(d.name, t.name);
  EXPECT_EQ(d.vcpus, 3);
  EXPECT_EQ(d.cmdline, t.cmdline);
  ASSERT_NE(d.channel(c.channel), nullptr);
}

TEST(RtVcpus, DefaultLeavesVcpuZeroForHousekeeping) {
  Config c;
  c.vcpus = 1;
  EXPECT_EQ(rt_vcpus(c), (std::vector<int>{0}));
  c.vcpus = 4;
  EXPECT_EQ(rt_vcpus(c), (std::vector<int>{1, 2, 3}));
  c.rt_vcpus = std::vector<int>{2};
  EXPECT_EQ(rt_vcpus(c), (std::vector<int>{2}));
}

TEST(Starvation, FifoVcpusMustLeaveAHostCpu) {
  Config c;
  c.define = true;
  c.vcpus = 2;  // vCPU 1 FIFO
  EXPECT_FALSE(starvation_problem(c, {0, 1}));          // one FIFO vCPU, two CPUs
  EXPECT_TRUE(starvation_problem(c, {0}));              // ... one CPU
  c.vcpu_pin = {1, 1};
  EXPECT_FALSE(starvation_problem(c, {0, 1}));
  c.rt_vcpus = std::vector<int>{0, 1};
  c.vcpu_pin = {0, 1};
  EXPECT_TRUE(starvation_problem(c, {0, 1}));           // every CPU has a FIFO vCPU
  c.allow_rt_starvation = true;
  EXPECT_FALSE(starvation_problem(c, {0, 1}));
  c.allow_rt_starvation = false;
  c.vcpu_priority = 0;
  EXPECT_FALSE(starvation_problem(c, {0, 1}));
}
