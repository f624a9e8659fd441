#!/usr/bin/env python3
"""vmlat's Ansible roles and playbooks, for real, against this machine.

1. ansible-lint (production profile) and ansible-playbook --syntax-check of
   every playbook;
2. provision.yml with connection local, this machine in the group `kvm`
   (vmlat_common, kvm_host with its tuning off, guest_images), into a
   temporary prefix, work and lock directory: it installs the bundle made by
   ansible/make-bundle from the build tree, the installed vmlat runs, the
   guest images are in the machine's guest cache; a second run reports
   changed=0;
3. facts.yml: the JSON it writes agrees with what this test reads itself;
4. a new bundle replaces the installed release (and the old one is pruned);
5. the "reboot needed" marker files (roles/vmlat_reboot), for real;
6. xen_host, and kvm_host with its RT tuning on, in --check --diff mode
   (they must not install Xen or touch GRUB here): the GRUB snippets they
   would write, the reboot they would ask for, and nothing installed;
7. hostile host variables (a newline in a CPU list, a quote in dom0_mem,
   `..` in a path, an option as a package name) are refused by name.

Usage: ansible_it.py --source-dir REPO --build-dir BUILD
Prints "N passed, N failed" and exits 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)", re.M)

passed = 0
failed = 0


def check(condition, what, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print("ok    " + what, flush=True)
    else:
        failed += 1
        print("FAIL  " + what + (("\n      " + detail.replace("\n", "\n      ")) if detail else ""), flush=True)
    return condition


def recap(output):
    """{host: {ok, changed, unreachable, failed}} from the PLAY RECAP."""
    tail = output[output.rfind("PLAY RECAP"):] if "PLAY RECAP" in output else ""
    return {m.group("host"): {k: int(m.group(k)) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(tail)}


class Ansible:
    def __init__(self, ansible_dir, log_dir):
        self.dir = ansible_dir
        self.log_dir = log_dir
        self.count = 0
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ansible_dir, "ansible.cfg"),
                        ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default",
                        ANSIBLE_LOCAL_TEMP=os.path.join(log_dir, "ansible-local"),
                        ANSIBLE_REMOTE_TEMP=os.path.join(log_dir, "ansible-remote"),
                        ANSIBLE_HOME=os.path.join(log_dir, "ansible-home"))

    def run(self, argv, name):
        self.count += 1
        t0 = time.monotonic()
        p = subprocess.run(argv, cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=1500)
        out = p.stdout.decode("utf-8", "replace")
        log = os.path.join(self.log_dir, "%02d-%s.log" % (self.count, name))
        with open(log, "w") as f:
            f.write(out)
        print("  [%s: exit %d, %.1f s, log %s]" % (name, p.returncode, time.monotonic() - t0, log), flush=True)
        return p.returncode, out

    def playbook(self, inventory, playbook, name, *extra):
        return self.run(["ansible-playbook", "-i", inventory, playbook, *extra], name)


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def write_inventory(path, hosts, groups):
    """A YAML inventory; JSON is YAML, so json.dumps writes it safely."""
    inventory = {"all": {"hosts": hosts, "children": {g: {"hosts": {h: {} for h in members}}
                                                      for g, members in groups.items()}}}
    with open(path, "w") as f:
        json.dump(inventory, f, indent=2)


def dpkg_installed(package):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return p.returncode == 0 and b"install ok installed" in p.stdout


def repack_with_extra_file(src, dst):
    """The same bundle plus one file: a new bundle, as a rebuild would make."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin.getmembers():
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
        data = b"a second bundle\n"
        info = tarfile.TarInfo("./share/vmlat/test-marker")
        info.size = len(data)
        info.mode = 0o644
        import io
        tout.addfile(info, io.BytesIO(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, inventories)")
    args = ap.parse_args()
    source = os.path.abspath(args.source_dir)
    ansible_dir = os.path.join(source, "ansible")
    t_start = time.monotonic()

    for tool in ("ansible-playbook", "ansible-lint"):
        if shutil.which(tool) is None:
            print("%s not found: run ci/bootstrap (Debian's ansible-core and ansible-lint)" % tool)
            print("0 passed, 1 failed")
            return 1
    try:
        import ansible  # noqa: F401  (the filters and the module under test import it)
    except ImportError:
        # Another python3 on PATH than Ansible's (pyenv, a venv): rerun with Ansible's own.
        with open(shutil.which("ansible-playbook")) as f:
            interpreter = f.readline()[2:].split()[0]
        if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
            print("ansible's Python modules cannot be imported; run ci/bootstrap\n0 passed, 1 failed")
            return 1
        os.execv(interpreter, [interpreter] + sys.argv)

    tmp = tempfile.mkdtemp(prefix="vmlat_ansible_it_")
    lock_dir = "/run/vmlat-ansible-it-%d" % os.getpid()
    tmpfiles_conf = "/etc/tmpfiles.d/vmlat-lock%s.conf" % re.sub(r"[^A-Za-z0-9]+", "-", lock_dir)
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    ans = Ansible(ansible_dir, logs)
    print("work directory: %s" % tmp, flush=True)
    try:
        run_all(ans, source, os.path.abspath(args.build_dir), tmp, lock_dir, tmpfiles_conf)
    finally:
        shutil.rmtree(lock_dir, ignore_errors=True)
        if os.path.exists(tmpfiles_conf):
            os.unlink(tmpfiles_conf)
        if args.keep or failed:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("ansible_it: %.0f s" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def load_module(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRUB_CFG = """\
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-0a1b-2c3d' {
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-0a1b-2c3d' {
\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-28-rt-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-28-rt-amd64-advanced-0a1b-2c3d' {
\t}
\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-28-rt-amd64 (recovery mode)' $menuentry_id_option 'gnulinux-6.1.0-28-rt-amd64-recovery-0a1b-2c3d' {
\t}
}
menuentry 'Debian GNU/Linux, with Xen hypervisor' $menuentry_id_option 'xen-gnulinux-simple-0a1b-2c3d' {
}
"""


def pure_parts(source):
    """The roles' filters and the facts module's preemption rule, as functions."""
    roles = os.path.join(source, "ansible", "roles", "kvm_host", "filter_plugins")
    cpus = load_module(os.path.join(roles, "vmlat_cpus.py"), "vmlat_cpus")
    grub = load_module(os.path.join(roles, "vmlat_grub.py"), "vmlat_grub")
    facts = load_module(os.path.join(source, "ansible", "library", "vmlat_host_facts.py"), "vmlat_host_facts")
    check(cpus.vmlat_cpu_list("0-2,5,4") == [0, 1, 2, 4, 5] and cpus.vmlat_cpu_list("") == []
          and cpus.vmlat_cpu_list_format([5, 0, 1, 2, 4, 7]) == "0-2,4-5,7", "CPU list filters")
    for bad in ("3-1", "1,,2", "a", "1-", "5000"):
        try:
            cpus.vmlat_cpu_list(bad)
            check(False, "CPU list filter refuses %r" % bad)
        except Exception as e:
            check("kvm_host" in str(e) or "CPU list" in str(e), "CPU list filter refuses %r (%s)" % (bad, e))
    check(grub.vmlat_grub_default(GRUB_CFG, "6.1.0-28-rt-amd64")
          == "gnulinux-advanced-0a1b-2c3d>gnulinux-6.1.0-28-rt-amd64-advanced-0a1b-2c3d",
          "GRUB_DEFAULT for a kernel in the Advanced submenu, by entry id")
    top = GRUB_CFG.replace("submenu ", "# submenu ")
    top = "\n".join(l for l in top.splitlines() if not l.startswith("# submenu"))
    check(grub.vmlat_grub_default(top, "6.1.0-28-rt-amd64") == "gnulinux-6.1.0-28-rt-amd64-advanced-0a1b-2c3d",
          "GRUB_DEFAULT for a kernel at the top level (GRUB_DISABLE_SUBMENU=y)")
    check(grub.vmlat_grub_default(GRUB_CFG, "6.1.0-29-rt-amd64") == "", "no GRUB_DEFAULT for a kernel GRUB lacks")
    cases = [("1", "#1 SMP", "PREEMPT_RT"), (None, "#1 SMP PREEMPT_RT Debian", "PREEMPT_RT"),
             (None, "#1 SMP PREEMPT_DYNAMIC Debian 6.1", "PREEMPT_DYNAMIC"), (None, "#1 SMP PREEMPT Debian", "PREEMPT"),
             (None, "#1 SMP Debian", "none"), (None, None, "unknown")]
    check(all(facts.preempt_model(rt, v) == want for rt, v, want in cases),
          "facts: preemption model rules (as collect_system_facts)")


def run_all(ans, source, build, tmp, lock_dir, tmpfiles_conf):
    pure_parts(source)

    # ------------------------------------------------------------ bundle
    bundle = os.path.join(tmp, "vmlat-bundle.tar.gz")
    p = subprocess.run([os.path.join(source, "ansible", "make-bundle"), build, bundle],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not check(p.returncode == 0 and os.path.isfile(bundle), "make-bundle makes a bundle from the build tree",
                 "exit %d: %s" % (p.returncode, p.stdout.decode(errors="replace"))):
        return
    bundle2 = os.path.join(tmp, "vmlat-bundle-again.tar.gz")
    subprocess.run([os.path.join(source, "ansible", "make-bundle"), build, bundle2], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(bundle, "rb") as a, open(bundle2, "rb") as b:
        check(a.read() == b.read(), "make-bundle makes the same bytes twice from the same build")
    with tarfile.open(bundle) as t:
        names = set(t.getnames())
        packages = t.extractfile("./share/vmlat/runtime-packages").read().decode().split()
    for wanted in ("./bin/vmlat", "./libexec/vmlat/build-guest", "./libexec/vmlat/vmlat-guest-agent",
                   "./libexec/vmlat/vmlat-probe", "./lib/vmlat/plugins/vmlat-plugin-kvm.so"):
        check(wanted in names, "the bundle holds " + wanted[2:])
    check("libtomlplusplus3" in packages and "libc6" in packages,
          "the bundle lists the Debian packages of its libraries", " ".join(packages))

    # ------------------------------------------------------------ lint
    rc, out = ans.run(["ansible-lint", "--nocolor"], "ansible-lint")
    check(rc == 0 and "0 failure(s), 0 warning(s)" in out, "ansible-lint (production profile) is clean", tail(out))
    rc, out = ans.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", "provision.yml", "facts.yml",
                       "tests/reboot_marker.yml", "tests/validate.yml"], "syntax-check")
    check(rc == 0, "ansible-playbook --syntax-check of every playbook", tail(out))

    # ------------------------------------------------------------ provision for real
    prefix = os.path.join(tmp, "opt", "vmlat")
    work_dir = os.path.join(tmp, "var", "lib", "vmlat")
    markers = os.path.join(tmp, "reboot-required")
    host = "vmlat-it-local"
    common_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "vmlat_common_bundle": bundle,
        "vmlat_common_prefix": prefix,
        "vmlat_common_work_dir": work_dir,
        "vmlat_common_lock_dir": lock_dir,
        # ci/bootstrap keeps apt's lists fresh enough; no mirror round trip per run.
        "vmlat_common_apt_cache_valid_time": 0,
        "kvm_host_reboot_marker_dir": markers,
        "xen_host_reboot_marker_dir": markers,
    }
    inventory = os.path.join(tmp, "inventory.yml")
    write_inventory(inventory, {host: common_vars}, {"kvm": [host]})

    rc, out = ans.playbook(inventory, "provision.yml", "provision-1")
    r = recap(out).get(host)
    if not check(rc == 0 and r and r["failed"] == 0 and r["unreachable"] == 0,
                 "provision.yml runs (vmlat_common, kvm_host, guest_images)", tail(out)):
        return
    releases = prefix + "-releases"
    check(os.path.islink(prefix) and os.path.realpath(prefix).startswith(releases + "/"),
          "the prefix is a symlink into the releases", prefix)
    v = subprocess.run([os.path.join(prefix, "bin", "vmlat"), "version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    installed_version = v.stdout.decode().strip()
    check(v.returncode == 0 and installed_version, "the installed vmlat runs", installed_version)
    pl = subprocess.run([os.path.join(prefix, "bin", "vmlat"), "plugins"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
    plugins_out = pl.stdout.decode()
    check(pl.returncode == 0 and "kvm" in plugins_out and os.path.realpath(prefix) in plugins_out,
          "the installed vmlat loads its own plugins (from the release, not the build tree)", plugins_out)
    check(os.path.isdir(work_dir) and os.path.isdir(lock_dir), "work and lock directories exist")
    try:
        with open(tmpfiles_conf) as f:
            tmpfiles = f.read()
    except OSError:
        tmpfiles = ""
    check(("d %s 0755 root root -" % lock_dir) in tmpfiles, "systemd-tmpfiles makes the lock directory at boot",
          tmpfiles_conf)
    images = re.findall(r'"msg": "(nrt|rt): (/\S+) \(', out)
    check(sorted(f for f, _ in images) == ["nrt", "rt"], "guest_images reports an nrt and an rt image", tail(out))
    for flavour, directory in images:
        check(all(os.path.isfile(os.path.join(directory, n)) for n in ("vmlinuz", "initramfs.img", "guest.json"))
              and os.path.basename(directory).startswith(flavour + "-"),
              "the %s guest image is in the cache (%s)" % (flavour, directory))
    check(not os.path.exists(markers), "no reboot needed with the tuning off (no marker written)")

    rc, out = ans.playbook(inventory, "provision.yml", "provision-2")
    r = recap(out).get(host)
    check(rc == 0 and r is not None and r["changed"] == 0 and r["failed"] == 0,
          "a second provision.yml run reports changed=0 (%s)" % (r,),
          "\n".join(l for l in out.splitlines() if l.startswith("changed:")) or tail(out))

    # ------------------------------------------------------------ facts
    facts_dir = os.path.join(tmp, "facts")
    os.makedirs(facts_dir)
    rc, out = ans.playbook(inventory, "facts.yml", "facts", "-e", "vmlat_facts_dir=" + facts_dir,
                           "-e", "vmlat_facts_reboot_marker_dir=" + markers)
    facts = {}
    try:
        with open(os.path.join(facts_dir, host + ".json")) as f:
            facts = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "facts.yml writes <dir>/<host>.json", "%s\n%s" % (e, tail(out)))
    if facts:
        u = os.uname()
        try:
            with open("/sys/kernel/realtime") as f:
                rt = f.read().strip() == "1"
        except OSError:
            rt = "PREEMPT_RT" in u.version
        with open("/proc/cmdline") as f:
            cmdline = f.read().strip()
        check(facts.get("host") == host and facts.get("format") == 1, "facts name the host and their format")
        check(facts.get("kernel_release") == u.release and facts.get("kernel_version") == u.version
              and facts.get("kernel_cmdline") == cmdline and facts.get("hostname") == u.nodename,
              "facts: kernel release, version, command line, hostname", json.dumps(facts)[:600])
        check(facts.get("preempt_rt") is rt and (facts.get("preempt_model") == "PREEMPT_RT") is rt,
              "facts: preemption model (%s)" % facts.get("preempt_model"))
        check(facts.get("cpu_count") == os.sysconf("SC_NPROCESSORS_CONF") and isinstance(facts.get("cpu_model"), str),
              "facts: CPU count and model (%s x %s)" % (facts.get("cpu_count"), facts.get("cpu_model")))
        kvm = facts.get("kvm", {})
        dev_ok = os.path.exists("/dev/kvm")
        check(isinstance(kvm.get("usable"), bool) and kvm.get("reason") and (dev_ok or not kvm["usable"])
              and (("kvm" in facts.get("hypervisors", [])) is kvm.get("usable")),
              "facts: KVM usable=%s (%s)" % (kvm.get("usable"), kvm.get("reason")))
        xen = facts.get("xen", {})
        check(xen.get("dom0") is os.path.exists("/proc/xen/capabilities") and xen.get("reason"),
              "facts: Xen dom0=%s (%s)" % (xen.get("dom0"), xen.get("reason")))
        check(facts.get("vmlat") == {"prefix": prefix, "installed": True, "version": installed_version},
              "facts: the installed vmlat", json.dumps(facts.get("vmlat")))
        check(facts.get("reboot_needed") is False and facts.get("reboot_required") == {},
              "facts: no reboot needed")
        check(isinstance(facts.get("isolated_cpus"), str), "facts: isolated CPUs (%r)" % facts.get("isolated_cpus"))

    # ------------------------------------------------------------ a new bundle replaces the release
    old_release = os.path.realpath(prefix)
    bundle3 = os.path.join(tmp, "vmlat-bundle-new.tar.gz")
    repack_with_extra_file(bundle, bundle3)
    upgrade_inventory = os.path.join(tmp, "inventory-upgrade.yml")
    write_inventory(upgrade_inventory, {host: dict(common_vars, vmlat_common_bundle=bundle3,
                                                   vmlat_common_keep_releases=0)}, {})
    rc, out = ans.playbook(upgrade_inventory, "provision.yml", "upgrade")
    new_release = os.path.realpath(prefix)
    check(rc == 0 and new_release != old_release and os.path.isfile(os.path.join(prefix, "share/vmlat/test-marker")),
          "a new bundle becomes the installed release", tail(out))
    check(not os.path.exists(old_release) and os.listdir(releases) == [os.path.basename(new_release)],
          "the old release is removed (vmlat_common_keep_releases: 0)", str(os.listdir(releases)))

    # ------------------------------------------------------------ reboot marker convention
    marker_dir = os.path.join(tmp, "marker-test")
    rc, out = ans.playbook(inventory, "tests/reboot_marker.yml", "reboot-marker",
                           "-e", "vmlat_it_marker_dir=" + marker_dir)
    check(rc == 0 and "REBOOT NEEDED: %s: kvm_host: the running kernel lacks x=1; second line; third" % host in out,
          "vmlat_reboot writes its marker, one reason a line, and says REBOOT NEEDED", tail(out))

    # ------------------------------------------------------------ xen_host and kvm tuning in check mode
    # With the first bundle again, which is no longer installed: vmlat_common
    # in check mode must say what it would install and change nothing.
    check_inventory = os.path.join(tmp, "inventory-check.yml")
    tuned = dict(common_vars, kvm_host_isolated_cpus="1", kvm_host_kvm_low_latency=True,
                 kvm_host_sched_rt_runtime_us=-1, kvm_host_rt_kernel=True, xen_host_scheduler="null",
                 xen_host_dom0_max_vcpus="1", xen_host_boot_default=True)
    write_inventory(check_inventory, {host: tuned}, {"kvm": [host], "xen": [host]})
    grub_files = ["/etc/default/grub.d/vmlat-xen.cfg", "/etc/default/grub.d/vmlat-kvm-host.cfg",
                  "/etc/modprobe.d/vmlat-kvm.conf", "/etc/sysctl.d/90-vmlat-kvm-host.conf"]
    before = {f: os.path.exists(f) for f in grub_files}
    had_xen = dpkg_installed("xen-hypervisor-4.17-amd64")
    with open("/proc/sys/kernel/sched_rt_runtime_us") as f:
        rt_runtime_before = f.read()
    rc, out = ans.playbook(check_inventory, "provision.yml", "check-mode", "--check", "--diff")
    r = recap(out).get(host)
    check(rc == 0 and r is not None and r["failed"] == 0, "provision.yml --check with xen_host and RT tuning on",
          tail(out))
    check('GRUB_CMDLINE_XEN_DEFAULT="${GRUB_CMDLINE_XEN_DEFAULT} dom0_mem=1024M,max:1024M dom0_max_vcpus=1 sched=null"'
          in out and "XEN_OVERRIDE_GRUB_DEFAULT=1" in out, "xen_host would write the Xen command line and GRUB default")
    check('GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} isolcpus=managed_irq,domain,1 nohz=on '
          'nohz_full=1 rcu_nocbs=1 irqaffinity=0"' in out,
          "kvm_host would put isolcpus/nohz_full/rcu_nocbs/irqaffinity on GRUB's command line")
    check("options kvm kvmclock_periodic_sync=0" in out and "kernel.sched_rt_runtime_us = -1" in out,
          "kvm_host would set the kvm module options and RT throttling")
    check(re.search(r"REBOOT NEEDED: %s: xen_host: this host is not running Xen" % host, out) is not None,
          "xen_host says a reboot into Xen is needed")
    check(re.search(r"REBOOT NEEDED: %s: kvm_host: the running kernel was booted without isolcpus=" % host, out)
          is not None, "kvm_host says a reboot is needed for the kernel parameters")
    with open("/proc/sys/kernel/sched_rt_runtime_us") as f:
        rt_runtime_after = f.read()
    check("check mode: would install %s" % bundle in out and os.path.realpath(prefix) == new_release,
          "vmlat_common in check mode says it would install the (first) bundle and leaves the prefix")
    check(dpkg_installed("xen-hypervisor-4.17-amd64") == had_xen and
          {f: os.path.exists(f) for f in grub_files} == before and rt_runtime_after == rt_runtime_before
          and not dpkg_installed("linux-image-rt-amd64"),
          "check mode installed nothing and wrote no file")

    # ------------------------------------------------------------ hostile host variables
    hostile = {
        "bad-isolated-cpus": ({"kvm_host_isolated_cpus": "1\nGRUB_TIMEOUT=0"}, "kvm_host_isolated_cpus"),
        "bad-cmdline-extra": ({"kvm_host_kernel_cmdline_extra": ["quiet\" init=/bin/sh \""]},
                              "kvm_host_kernel_cmdline_extra"),
        "bad-dom0-mem": ({"xen_host_dom0_mem": "1G\"\nGRUB_DEFAULT=0"}, "xen_host_dom0_mem"),
        "bad-scheduler": ({"xen_host_scheduler": "credit2 dom0_mem=1"}, "xen_host_scheduler"),
        "bad-prefix": ({"vmlat_common_prefix": "/opt/../etc"}, "vmlat_common_prefix"),
        "bad-lock-dir": ({"vmlat_common_lock_dir": "/run/vmlat\nx"}, "vmlat_common_lock_dir"),
        "bad-package": ({"vmlat_common_extra_packages": ["-oAPT::Get::Foo=1"]}, "is not a Debian package name"),
        "bad-governor": ({"kvm_host_cpu_governor": "performance > /etc/passwd"}, "kvm_host_cpu_governor"),
        "bad-flavour": ({"guest_images_flavours": ["nrt", "../../etc"]}, "guest_images_flavours"),
    }
    hostile_inventory = os.path.join(tmp, "inventory-hostile.yml")
    write_inventory(hostile_inventory, {name: dict(common_vars, **v) for name, (v, _) in hostile.items()}, {})
    rc, out = ans.playbook(hostile_inventory, "tests/validate.yml", "hostile")
    r = recap(out)
    for name, (_, needle) in hostile.items():
        lines = [l for l in out.splitlines() if l.startswith(("fatal: [%s]" % name, "failed: [%s]" % name))]
        check(r.get(name, {}).get("failed") == 1 and any(needle in l for l in lines),
              "refused: %s (%s)" % (name, needle), "\n".join(l[:300] for l in lines) or tail(out))


if __name__ == "__main__":
    sys.exit(main())
