// The Xen library's pure parts: xl config text for the three domain types,
// hostile values refused with the setting named, xl list / xl info parsing
// (testdata captured from Xen 4.17 in the lab).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <filesystem>
#include <unistd.h>

#include "vmlat/text.hpp"
#include "vmlat/local.hpp"
#include "xen_backend.hpp"
#include "xl_config.hpp"
#include "xl_domain.hpp"

namespace {

using namespace vmlat;
using namespace vmlat::xen;

DomainSpec pv_spec() {
  DomainSpec s;
  s.name = "vmlat-cell-1";
  s.type = DomainType::pv;
  s.kernel = "/var/cache/vmlat/guests/nrt/vmlinux";
  s.ramdisk = "/var/cache/vmlat/guests/nrt/initramfs.img";
  s.cmdline = "console=hvc0 panic=-1 vmlat.port=/dev/hvc0";
  s.memory_mb = 256;
  s.vcpus = 2;
  return s;
}

std::string error_of(const DomainSpec& s) {
  try {
    render_xl_config(s);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}


TEST(XenXlConfig, PvConfigIsExactlyThis) {
  DomainSpec s = pv_spec();
  s.cpus = {1, 2, 3};
  EXPECT_EQ(render_xl_config(s),
            "name = \"vmlat-cell-1\"\n"
            "type = \"pv\"\n"
            "kernel = \"/var/cache/vmlat/guests/nrt/vmlinux\"\n"
            "ramdisk = \"/var/cache/vmlat/guests/nrt/initramfs.img\"\n"
            "extra = \"console=hvc0 panic=-1 vmlat.port=/dev/hvc0\"\n"
            "memory = 256\n"
            "vcpus = 2\n"
            "cpus = \"1,2,3\"\n"
            "on_poweroff = \"destroy\"\n"
            "on_reboot = \"destroy\"\n"
            "on_crash = \"destroy\"\n");
}

TEST(XenXlConfig, PvhIsPvWithAnotherType) {
  DomainSpec s = pv_spec();
  s.type = DomainType::pvh;
  const std::string cfg = render_xl_config(s);
  EXPECT_NE(cfg.find("type = \"pvh\"\n"), std::string::npos) << cfg;
  EXPECT_EQ(cfg.find("device_model"), std::string::npos) << cfg;
}

TEST(XenXlConfig, HvmHasItsDeviceModelAndNoDisplay) {
  DomainSpec s = pv_spec();
  s.type = DomainType::hvm;
  s.kernel = "/var/cache/vmlat/guests/nrt/vmlinuz";
  s.hvm_serial = "file:/tmp/cell/serial.log";
  s.device_model_args = {"-name", "vmlat-cell-1,debug-threads=on"};
  const std::string cfg = render_xl_config(s);
  for (const char* want : {"type = \"hvm\"\n", "device_model_version = \"qemu-xen\"\n",
                           "serial = \"file:/tmp/cell/serial.log\"\n", "vnc = 0\n", "sdl = 0\n", "nographic = 1\n",
                           "vga = \"none\"\n",
                           "device_model_args = [ \"-name\", \"vmlat-cell-1,debug-threads=on\" ]\n"})
    EXPECT_NE(cfg.find(want), std::string::npos) << want << "\n" << cfg;
}

TEST(XenXlConfig, QuotesAndBackslashesAreEscaped) {
  DomainSpec s = pv_spec();
  s.cmdline = "a=\"b\" c=\\d";
  EXPECT_NE(render_xl_config(s).find("extra = \"a=\\\"b\\\" c=\\\\d\"\n"), std::string::npos);
}

TEST(XenXlConfig, HostileValuesAreRefusedWithTheSettingNamed) {
  DomainSpec s = pv_spec();
  s.cmdline = "quiet\nkernel = \"/tmp/evil\"";
  EXPECT_NE(error_of(s).find("cmdline: control character"), std::string::npos) << error_of(s);
  s = pv_spec();
  s.name = "-h";
  EXPECT_NE(error_of(s).find("must not start with '-'"), std::string::npos) << error_of(s);
  s.name = "a b";
  EXPECT_NE(error_of(s).find("only letters"), std::string::npos);
  s.name = "42";
  EXPECT_NE(error_of(s).find("domain id"), std::string::npos);
  s.name = "";
  EXPECT_NE(error_of(s).find("1 to 64"), std::string::npos);
  s = pv_spec();
  s.kernel = "relative/vmlinux";
  EXPECT_NE(error_of(s).find("kernel: \"relative/vmlinux\" is not an absolute path"), std::string::npos);
  s = pv_spec();
  s.ramdisk = "/a,b";
  EXPECT_NE(error_of(s).find("ramdisk: \"/a,b\" contains a comma"), std::string::npos);
  s = pv_spec();
  s.memory_mb = 8;
  EXPECT_NE(error_of(s).find("memory_mb 8"), std::string::npos);
  s = pv_spec();
  s.vcpus = 0;
  EXPECT_NE(error_of(s).find("vcpus 0"), std::string::npos);
  s = pv_spec();
  s.type = DomainType::hvm;
  s.hvm_serial = "tcp:1.2.3.4:5";
  EXPECT_NE(error_of(s).find("expected \"pty\" or \"file:/path\""), std::string::npos);
  s.hvm_serial = "pty";
  s.device_model_args = {"-x\x01"};
  EXPECT_NE(error_of(s).find("device_model_args: control character"), std::string::npos);
}

TEST(XenXlConfig, DomainTypes) {
  EXPECT_EQ(domain_type_from_string("pvh"), DomainType::pvh);
  EXPECT_EQ(to_string(DomainType::hvm), "hvm");
  EXPECT_THROW(domain_type_from_string("PV"), ConfigError);
}

TEST(XenXlParse, XlList) {
  EXPECT_EQ(parse_xl_list("Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
                          "Domain-0                                     0  1024     2     r-----      23.8\n"
                          "vmlat-cell-1                                 3   256     1     -b----       2.1\n"),
            (std::vector<std::string>{"Domain-0", "vmlat-cell-1"}));
  EXPECT_TRUE(parse_xl_list("").empty());
}

TEST(XenXlParse, XlInfoOfXen417) {
  const json facts = parse_xl_info(slurp(std::string(VMLAT_SOURCE_DIR) + "/plugins/common/xen/tests/testdata/xl-info-4.17.txt"));
  EXPECT_EQ(facts.value("xen_version", ""), "4.17.7");
  EXPECT_EQ(facts.value("xen_scheduler", ""), "credit2");
  EXPECT_EQ(facts.value("release", ""), "6.1.0-57-amd64");
  EXPECT_NE(facts.value("xen_commandline", "").find("dom0_mem=1024M,max:1024M"), std::string::npos);
  EXPECT_NE(facts.value("virt_caps", "").find("hvm"), std::string::npos);
  EXPECT_EQ(facts.value("nr_cpus", ""), "2");
}

TEST(XenBackendParts, DomainNamesAreUsableAndCarryThePid) {
  const std::string name = domain_name_for("xen-pv-nrt-stress/on;rm -rf", 4242);
  EXPECT_EQ(name, "vmlat-xen-pv-nrt-stress-on-rm--rf-4242");
  EXPECT_NO_THROW(check_domain_name(name));
  EXPECT_EQ(pid_of_domain_name(name), 4242);
  const std::string longer = domain_name_for(std::string(200, 'a'), 123456);
  EXPECT_LE(longer.size(), 63u);
  EXPECT_EQ(pid_of_domain_name(longer), 123456);
  EXPECT_EQ(pid_of_domain_name("Domain-0"), std::nullopt);
  EXPECT_EQ(pid_of_domain_name("vmlat-cell"), std::nullopt);
  EXPECT_EQ(pid_of_domain_name("mine-1234"), std::nullopt) << "only vmlat's own domains";
}

TEST(XenBackendParts, XlVcpuListHardAffinity) {
  // As Xen 4.17's xl prints it.
  const std::string text =
      "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n"
      "vmlat-a-1                            3     0    1   -b-       1.2  1 / all\n"
      "vmlat-a-1                            3     1    0   r--       0.9  0-1 / all\n";
  const auto rows = parse_vcpu_list(text);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::pair<int, std::string>{0, "1"}));
  EXPECT_EQ(rows[1], (std::pair<int, std::string>{1, "0-1"}));
  EXPECT_TRUE(parse_vcpu_list("Name ID VCPU CPU State Time(s) Affinity (Hard / Soft)\n").empty());
}

TEST(XenBackendParts, DeviceModelIsFoundByItsDomid) {
  // A /proc of three processes: two device models (domains 12 and 3), one other.
  const auto proc = std::filesystem::temp_directory_path() / ("vmlat-fake-proc-" + std::to_string(::getpid()));
  std::filesystem::remove_all(proc);
  auto add = [&](const std::string& pid, const std::string& cmdline) {
    std::filesystem::create_directories(proc / pid);
    std::ofstream(proc / pid / "cmdline", std::ios::binary) << cmdline;
  };
  using namespace std::string_literals;
  add("100", "/usr/libexec/xen-qemu-system-i386\0-xen-domid\0" "12\0-nodefaults\0"s);
  add("200", "/usr/libexec/xen-qemu-system-i386\0-xen-domid\0" "3\0-nodefaults\0"s);
  add("300", "sleep\0" "3\0"s);
  add("self", "x\0"s);
  EXPECT_EQ(find_device_model(3, proc), 200);
  EXPECT_EQ(find_device_model(12, proc), 100);
  EXPECT_EQ(find_device_model(1, proc), -1) << "-xen-domid 12 is not domain 1";
  std::filesystem::remove_all(proc);
}

// The schedulers the xen_host role can boot Xen with are exactly those a
// xen-* backend's `scheduler` accepts (issue 16: the role offered rtds, which
// the backends refused).
TEST(XenBackendParts, SchedulersAgreeWithTheXenHostRole) {
  const std::string validate = slurp(VMLAT_SOURCE_DIR "/ansible/roles/xen_host/tasks/validate.yml");
  const std::string marker = "xen_host_scheduler in [";
  const auto at = validate.find(marker);
  ASSERT_NE(at, std::string::npos) << "the role's validate.yml no longer lists its schedulers";
  const auto end = validate.find(']', at);
  std::vector<std::string> role;
  std::string list = validate.substr(at + marker.size(), end - at - marker.size());
  for (std::size_t q = list.find('\''); q != std::string::npos; q = list.find('\'', q + 1)) {
    const auto close = list.find('\'', q + 1);
    role.push_back(list.substr(q + 1, close - q - 1));
    q = close;
  }
  ASSERT_GE(role.size(), 2u);
  const auto dir = std::filesystem::temp_directory_path() / ("vmlat-xen-sched-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto exec = vmlat::make_local_executor(dir / "exec");
  auto validates = [&](const std::string& scheduler, const std::string& plugin) {
    const auto plan = dir / (plugin + "-" + scheduler + ".toml");
    std::ofstream(plan) << "[plan]\nname = \"sched\"\n[backend." << plugin << "]\nscheduler = \"" << scheduler
                        << "\"\n[probe.cyclictest]\nplugin = \"cyclic\"\n";
    auto r = exec->run(vmlat::Command{{VMLAT_BINARY_DIR "/vmlat", "validate", plan.string()}, std::chrono::seconds(30)});
    return std::pair{r.exit_code, r.out + r.err};
  };
  for (const std::string plugin : {"xen-pv", "xen-pvh", "xen-hvm"}) {
    for (const auto& scheduler : role) {
      auto [code, text] = validates(scheduler, plugin);
      EXPECT_EQ(code, 0) << plugin << " refuses the role's scheduler " << scheduler << ": " << text;
    }
    auto [code, text] = validates("sedf", plugin);  // removed from Xen long ago; not the role's
    EXPECT_EQ(code, 2) << text;
    EXPECT_NE(text.find("rtds"), std::string::npos) << "the error lists the accepted schedulers: " << text;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
